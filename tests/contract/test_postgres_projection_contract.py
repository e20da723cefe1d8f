"""The projection contract on :class:`PostgresProjection`, each test in a schema of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.projections.base import Projection
from flowmonkey.projections.postgres import PostgresProjection
from tests.contract.projection_contract import T0, ProjectionContract

pytestmark = pytest.mark.integration


class _Clock:
    """Advances one millisecond per reading, so row timestamps differ."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


class TestPostgresProjection(ProjectionContract):
    @pytest.fixture
    async def projection(self, pg_schema: tuple[str, str]) -> AsyncIterator[Projection]:
        dsn, schema = pg_schema
        projection = PostgresProjection(dsn, schema, pool_max=1, clock_ms=_Clock())
        await projection.start()
        yield projection
        await projection.close()


def test_postgres_projection_satisfies_the_protocol() -> None:
    assert isinstance(PostgresProjection("postgresql://unused"), Projection)
