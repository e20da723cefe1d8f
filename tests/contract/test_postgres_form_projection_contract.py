"""The form-projection contract on :class:`PostgresProjection` (``fm_form_submissions``),
each test in a schema of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.projections.base import Projection
from flowmonkey.projections.postgres import PostgresProjection
from tests.contract.form_projection_contract import FormProjectionContract

pytestmark = pytest.mark.integration


class TestPostgresFormProjection(FormProjectionContract):
    @pytest.fixture
    async def projection(self, pg_schema: tuple[str, str]) -> AsyncIterator[Projection]:
        dsn, schema = pg_schema
        projection = PostgresProjection(dsn, schema, pool_max=1)
        await projection.start()
        yield projection
        await projection.close()
