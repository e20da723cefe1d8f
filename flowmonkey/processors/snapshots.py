"""Snapshots of a partition processor's state (DESIGN §4 "Recovery").

A snapshot is the encoded :class:`~flowmonkey.kernel.state.PartitionState` of one
events partition as of an offset: replaying the events from ``events_offset`` on over
it gives the same state as replaying the whole partition. Snapshots only bound
recovery time; they are an optimisation, never the truth: one that is missing, cannot
be decoded or does not match the log is ignored, and the partition is replayed from 0.

Backends, one module each: :mod:`~flowmonkey.processors.snapshots_memory` (tests, the
embedded engine) and :mod:`~flowmonkey.processors.snapshots_postgres`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from flowmonkey.errors import FlowMonkeyError

__all__ = ["Snapshot", "SnapshotStore", "SnapshotStoreError"]


class SnapshotStoreError(FlowMonkeyError):
    """A snapshot could not be loaded or saved (the store is down, or not started)."""

    code = "SNAPSHOT_STORE_ERROR"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One partition's state, encoded by :mod:`~flowmonkey.processors.snapshot_codec`.

    ``events_offset`` is the next offset to replay from: the offset of the last event
    the state includes, plus one. On Kafka offsets are not dense (transaction markers
    take some), so it is not a count of events.
    """

    topic: str
    partition: int
    events_offset: int
    state: bytes


@runtime_checkable
class SnapshotStore(Protocol):
    """Where snapshots are kept: the newest one per events (topic, partition).

    ``save`` never replaces a snapshot covering more of the partition
    (``events_offset`` higher) with one covering less: a processor that lost its
    partition but has not noticed yet may still save an older one.
    """

    async def start(self) -> None:
        """Connect (and, for a database, migrate). Idempotent."""
        ...

    async def close(self) -> None: ...

    async def load(self, topic: str, partition: int) -> Snapshot | None:
        """The newest snapshot of the partition; None if there is none."""
        ...

    async def save(self, snapshot: Snapshot) -> None: ...
