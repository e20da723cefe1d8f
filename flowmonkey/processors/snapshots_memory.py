"""Snapshots kept in this process's memory: for tests and the embedded engine, where
they bound the time a processor rebuilt in the same process (a failed batch, a
restarted engine on the same log) takes to recover."""

from __future__ import annotations

from flowmonkey.processors.snapshots import Snapshot


class MemorySnapshotStore:
    """:class:`~flowmonkey.processors.snapshots.SnapshotStore` in a dict."""

    def __init__(self) -> None:
        self._snapshots: dict[tuple[str, int], Snapshot] = {}
        self.saves = 0  # snapshots stored (for tests and progress lines)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        # kept across close, like a database's rows: an engine started again on the
        # same store recovers from them
        return None

    async def load(self, topic: str, partition: int) -> Snapshot | None:
        return self._snapshots.get((topic, partition))

    async def save(self, snapshot: Snapshot) -> None:
        key = (snapshot.topic, snapshot.partition)
        current = self._snapshots.get(key)
        if current is not None and current.events_offset > snapshot.events_offset:
            return
        self._snapshots[key] = snapshot
        self.saves += 1
