"""A partition processor's snapshots: restore on recovery, save as the log grows.

Saving, in the order that makes a snapshot exact:

1. ``capture`` — when the committer takes the decided batches for an append, the
   partition state is exactly the state after them (deciding is synchronous, and
   every decided batch is in that append). If a snapshot is due, the state's three
   containers are copied then: a few milliseconds, and nothing else on the loop.
2. the append commits — or fails, and the copy is dropped (its state is not the log's).
3. ``appended`` — the positions say which events offset the state covers (the last
   event's offset + 1: Kafka's transaction markers take offsets too). Encoding
   (O(executions)) runs in a worker thread and the save in a background task, one at
   a time; a failed save is logged and the next is tried a ``snapshot_every`` later.

Copies are safe to encode off the loop: appliers replace an execution's containers
instead of changing them, and the processor adopts new state objects for every
change, so the objects a copy refers to never change after it is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from flowmonkey.kernel.form_state import FormState
from flowmonkey.kernel.state import ExecutionState, PartitionState
from flowmonkey.kernel.trigger_state import TriggerState
from flowmonkey.log.base import Log, OutRecord, Position
from flowmonkey.processors.snapshot_codec import (
    SnapshotDecodeError,
    anchor_of,
    decode_partition_state,
    encode_partition_state,
)
from flowmonkey.processors.snapshots import Snapshot, SnapshotStore

log = logging.getLogger("flowmonkey.processor.snapshots")

_CLOSE_WAIT_S = 2.0  # how long a stopping processor lets a save in flight finish


@dataclass(slots=True)
class StateCopy:
    """A partition state's containers as of a batch boundary (their objects are shared)."""

    executions: dict[str, ExecutionState]
    idempotency: dict[str, tuple[str, int]]
    seen_commands: list[str]
    forgotten: list[str]
    triggers: dict[str, TriggerState] = field(default_factory=dict)
    forms: dict[str, FormState] = field(default_factory=dict)


class Snapshotter:
    """Snapshots of one events partition, for its processor."""

    def __init__(self, store: SnapshotStore, topic: str, partition: int, every: int) -> None:
        if every < 1:
            raise ValueError(f"snapshot_every must be at least 1, not {every}")
        self.store = store
        self.topic = topic
        self.partition = partition
        self.every = every
        self.events_offset = 0  # the offset the partition's events reach (appends included)
        self.snapshot_offset = 0  # the offset the newest snapshot covers (0: none)
        self.saved = 0  # snapshots saved by this processor
        self._next_at = every
        self._saving: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ recovery

    async def restore(self, log_: Log) -> tuple[PartitionState, int] | None:
        """The newest snapshot's state and the offset to replay from, or None (replay
        from 0) when there is none or it cannot be used."""
        where = f"{self.topic}[{self.partition}]"
        try:
            snapshot = await self.store.load(self.topic, self.partition)
        except Exception as exc:
            log.warning("the snapshot of %s cannot be loaded; replaying from offset 0: %r",
                        where, exc)
            return None
        if snapshot is None:
            return None
        started = time.perf_counter()
        offset = snapshot.events_offset
        try:
            if offset < 1:
                raise SnapshotDecodeError(f"the snapshot covers offset {offset}, not an event")
            # a thread: decoding a big partition must not stall the loop (heartbeats)
            decoded = await asyncio.to_thread(
                decode_partition_state, snapshot.state, topic=self.topic,
                partition=self.partition, events_offset=offset)
        except SnapshotDecodeError as exc:
            log.error("ignoring the snapshot of %s as of offset %d; replaying from offset "
                      "0: %s", where, offset, exc)
            return None
        # The snapshot must agree with the log: its last event is still where it was.
        records = await log_.read(self.topic, self.partition, offset - 1, 1)
        if not records or records[0].offset != offset - 1 or \
                anchor_of(records[0].value) != decoded.anchor_crc:
            log.error("ignoring the snapshot of %s as of offset %d: the log's record at "
                      "offset %d is not the one it was taken after (was the topic created "
                      "again?); replaying from offset 0", where, offset, offset - 1)
            return None
        log.info("restored %s from its snapshot as of offset %d (%d executions, %d bytes) "
                 "in %.0f ms", where, offset, len(decoded.state.executions),
                 len(snapshot.state), (time.perf_counter() - started) * 1000)
        self.snapshot_offset = offset
        return decoded.state, offset

    def recovered(self, events_offset: int) -> None:
        """Recovery replayed the partition up to ``events_offset``."""
        self.events_offset = events_offset
        self._next_at = self.snapshot_offset + self.every

    # ------------------------------------------------------------------ saving

    def capture(self, state: PartitionState, appending: int) -> StateCopy | None:
        """A copy of ``state`` if a snapshot is due once the ``appending`` records about
        to be appended (events among them) are in; taken at the boundary of their
        batches. None otherwise (the common case: two comparisons)."""
        # judged with the append in flight counted: a partition that goes quiet after
        # crossing the mark still gets its snapshot
        reach = self.events_offset + appending
        if reach < self._next_at or (self._saving is not None and not self._saving.done()):
            return None
        executions = state.executions
        # Encoding costs O(executions): a partition holding more executions than
        # ``every`` waits for as many events as it holds executions, so the cost per
        # event appended stays bounded (and so does the replay after the snapshot).
        if reach - self.snapshot_offset < len(executions):
            return None
        return StateCopy(dict(executions), dict(state.idempotency), list(state.seen_commands),
                         list(state.forgotten), dict(state.triggers),
                         dict(state.forms))

    def appended(self, copy: StateCopy | None, records: Sequence[OutRecord],
                 positions: Sequence[Position]) -> int:
        """Note an append's positions, and save ``copy`` (the state after ``records``)
        in the background. Returns the events offset the partition now reaches."""
        if len(positions) != len(records):
            return self.events_offset  # not this log's contract; never guess an offset
        topic = self.topic
        for index in range(len(positions) - 1, -1, -1):
            if positions[index].topic == topic:
                break
        else:
            return self.events_offset  # no events: a copy stays due for the next append
        offset = self.events_offset = positions[index].offset + 1
        if copy is not None:
            self._next_at = offset + self.every  # after a failure too: no retry storm
            self._saving = asyncio.get_running_loop().create_task(
                self._save(copy, offset, anchor_of(records[index].value)),
                name=f"fm-snapshot-{self.partition}")
        return offset

    async def _save(self, copy: StateCopy, offset: int, anchor: int) -> None:
        where = f"{self.topic}[{self.partition}]"
        started = time.perf_counter()
        try:
            data = await asyncio.to_thread(
                encode_partition_state, copy.executions, copy.idempotency,
                copy.seen_commands, copy.forgotten, topic=self.topic, partition=self.partition,
                events_offset=offset, anchor_crc=anchor, triggers=copy.triggers,
                forms=copy.forms)
            encoded = time.perf_counter()
            await self.store.save(Snapshot(self.topic, self.partition, offset, data))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an optimisation failed; the log is still the truth
            log.warning("the snapshot of %s as of offset %d was not saved: %r", where,
                        offset, exc)
            return
        self.snapshot_offset = offset
        self.saved += 1
        log.info("saved the snapshot of %s as of offset %d (%d executions, %d bytes; "
                 "encoded in %.0f ms, stored in %.0f ms)", where, offset,
                 len(copy.executions), len(data), (encoded - started) * 1000,
                 (time.perf_counter() - encoded) * 1000)

    async def wait_saved(self) -> None:
        """Wait for the save in flight, if any (tests, and a clean stop)."""
        task = self._saving
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def close(self) -> None:
        """Let a save in flight finish for a moment, then abandon it."""
        task = self._saving
        if task is None or task.done():
            return
        done, _ = await asyncio.wait([task], timeout=_CLOSE_WAIT_S)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
