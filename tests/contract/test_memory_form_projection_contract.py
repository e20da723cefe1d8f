"""The form-projection contract on :class:`MemoryProjection`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.projections.base import Projection
from flowmonkey.projections.memory import MemoryProjection
from tests.contract.form_projection_contract import FormProjectionContract


class TestMemoryFormProjection(FormProjectionContract):
    @pytest.fixture
    async def projection(self) -> AsyncIterator[Projection]:
        projection = MemoryProjection()
        await projection.start()
        yield projection
        await projection.close()
