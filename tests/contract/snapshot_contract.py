"""The behaviour every :class:`~flowmonkey.processors.snapshots.SnapshotStore` backend
must have.

A backend's test module subclasses :class:`SnapshotStoreContract` and provides the
``store`` fixture: a started, empty store (its own schema for a database backend),
closed after the test. The tests use only the ``SnapshotStore`` interface.
"""

from __future__ import annotations

from flowmonkey.processors.snapshots import Snapshot, SnapshotStore

EVENTS = "orders.events"
# every byte value, NUL included: the state is opaque bytes, never text
BLOB = bytes(range(256)) * 3


class SnapshotStoreContract:
    async def test_a_partition_without_a_snapshot_loads_none(self, store: SnapshotStore) -> None:
        assert await store.load(EVENTS, 0) is None

    async def test_a_saved_snapshot_loads_back_byte_for_byte(self, store: SnapshotStore) -> None:
        snapshot = Snapshot(EVENTS, 3, 5_000, BLOB)
        await store.save(snapshot)
        assert await store.load(EVENTS, 3) == snapshot

    async def test_snapshots_are_kept_per_topic_and_partition(self, store: SnapshotStore) -> None:
        # given two topic prefixes sharing the store, and two partitions of one topic
        await store.save(Snapshot(EVENTS, 0, 10, b"orders-0"))
        await store.save(Snapshot(EVENTS, 1, 20, b"orders-1"))
        await store.save(Snapshot("billing.events", 0, 30, b"billing-0"))
        # then each loads its own
        assert await store.load(EVENTS, 0) == Snapshot(EVENTS, 0, 10, b"orders-0")
        assert await store.load(EVENTS, 1) == Snapshot(EVENTS, 1, 20, b"orders-1")
        assert await store.load("billing.events", 0) == \
            Snapshot("billing.events", 0, 30, b"billing-0")
        assert await store.load("billing.events", 1) is None

    async def test_a_newer_snapshot_replaces_the_older_one(self, store: SnapshotStore) -> None:
        await store.save(Snapshot(EVENTS, 0, 10, b"old"))
        await store.save(Snapshot(EVENTS, 0, 25, b"new"))
        assert await store.load(EVENTS, 0) == Snapshot(EVENTS, 0, 25, b"new")

    async def test_an_older_snapshot_never_replaces_a_newer_one(
            self, store: SnapshotStore) -> None:
        # a processor that lost the partition may still save what it had
        await store.save(Snapshot(EVENTS, 0, 25, b"successor"))
        await store.save(Snapshot(EVENTS, 0, 10, b"former owner"))
        assert await store.load(EVENTS, 0) == Snapshot(EVENTS, 0, 25, b"successor")

    async def test_a_snapshot_of_the_same_offset_replaces_the_stored_one(
            self, store: SnapshotStore) -> None:
        await store.save(Snapshot(EVENTS, 0, 25, b"first"))
        await store.save(Snapshot(EVENTS, 0, 25, b"again"))
        assert await store.load(EVENTS, 0) == Snapshot(EVENTS, 0, 25, b"again")

    async def test_a_large_snapshot_round_trips(self, store: SnapshotStore) -> None:
        big = bytes(range(256)) * 40_000  # ~10 MB, a partition of many executions
        await store.save(Snapshot(EVENTS, 7, 1_000_000, big))
        loaded = await store.load(EVENTS, 7)
        assert loaded == Snapshot(EVENTS, 7, 1_000_000, big)

