"""The snapshot store contract on :class:`MemorySnapshotStore`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.processors.snapshots import Snapshot, SnapshotStore
from flowmonkey.processors.snapshots_memory import MemorySnapshotStore
from tests.contract.snapshot_contract import SnapshotStoreContract


class TestMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[SnapshotStore]:
        store = MemorySnapshotStore()
        await store.start()
        yield store
        await store.close()


def test_the_memory_store_satisfies_the_protocol() -> None:
    assert isinstance(MemorySnapshotStore(), SnapshotStore)


async def test_the_memory_store_keeps_its_snapshots_across_close_and_start() -> None:
    store = MemorySnapshotStore()
    await store.start()
    await store.save(Snapshot("t.events", 0, 5, b"x"))
    await store.close()
    await store.start()
    assert await store.load("t.events", 0) == Snapshot("t.events", 0, 5, b"x")
