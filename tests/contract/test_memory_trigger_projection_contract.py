"""The trigger-projection contract on :class:`MemoryProjection`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.projections.base import Projection
from flowmonkey.projections.memory import MemoryProjection
from tests.contract.trigger_projection_contract import TriggerProjectionContract


class TestMemoryTriggerProjection(TriggerProjectionContract):
    @pytest.fixture
    async def projection(self) -> AsyncIterator[Projection]:
        projection = MemoryProjection()
        await projection.start()
        yield projection
        await projection.close()
