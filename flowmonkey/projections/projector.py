"""The projector: consumes the events topic and applies batches to a projection.

On a projection that stores its own offsets (:class:`OffsetStore`, e.g. Postgres) each
partition starts at the offset stored for the projector's group, and every batch is
applied together with its partition's next offset in one database transaction: a
restarted projector resumes exactly where the last one stopped and applies nothing
twice. The memory projection starts from offset 0 every time (its state is rebuilt
from the log on each start).

An event record that cannot be decoded is logged and skipped; its offset still
advances, so one bad record never blocks a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.events.codec import decode_record
from flowmonkey.events.envelope import Event
from flowmonkey.log.base import Log, Record
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.metrics import Metrics, default_metrics
from flowmonkey.projections.base import Projection

log = logging.getLogger("flowmonkey.projector")

OnBatch = Callable[[Sequence[Event], bool], None]
"""Called after each applied batch with ``replayed=True`` for events that were already
in the log when the projector started (history rebuilt on start, not news)."""

DEFAULT_GROUP = "flowmonkey-projector"
"""The name offsets are stored under when no group is given (also the consumer group
of :class:`~flowmonkey.projections.service.ProjectorService` on Kafka)."""

STORE_ERROR = "PROJECTION_STORE_ERROR"
"""The code of ``ProjectionStoreError``: the store refused or lost a whole batch (rows
and offsets), so the batch can be retried. Matched by code so that the memory-only
engine does not import the Postgres driver."""

_RETRY_FIRST_S = 0.1
_TAIL_POLL_MS = 200
_RETRY_MAX_S = 5.0


@runtime_checkable
class OffsetStore(Protocol):
    """A projection that stores consumer offsets in the same transaction as the rows
    they produced (``PostgresProjection``)."""

    async def apply_events_with_offsets(
        self, events: Sequence[Event], group: str | None, offsets: dict[tuple[str, int], int]
    ) -> None: ...

    async def committed_offset(self, group: str, topic: str, partition: int) -> int | None: ...


def offset_store(projection: Projection) -> OffsetStore | None:
    return projection if isinstance(projection, OffsetStore) else None


@dataclass(slots=True)
class PartitionProgress:
    """How far one partition has been projected (by this process)."""

    partition: int
    offset: int = 0
    """The next offset to apply: every record below it is applied (or was skipped)."""
    applied_events: int = 0
    """Events this process applied from the partition since it started consuming it."""
    skipped_records: int = 0
    """Records that could not be decoded and were skipped."""
    last_event_ms: int | None = None
    """The timestamp of the last applied event."""
    lag_ms: int | None = None
    """When the last batch committed: commit time − timestamp of its last event."""


def decode_records(records: Iterable[Record]) -> tuple[list[Event], int]:
    """The events in ``records`` and how many records were skipped as undecodable."""
    events: list[Event] = []
    skipped = 0
    for record in records:
        try:
            events.append(decode_record(record))
        except Exception as exc:  # any failure: a bad record must never stop a partition
            skipped += 1
            log.error("skipping undecodable event %s:%d:%d: %s: %s", record.topic,
                      record.partition, record.offset, type(exc).__name__, exc)
    return events, skipped


def record_progress(progress: PartitionProgress, events: Sequence[Event], skipped: int,
                    next_offset: int, now_ms: int, metrics: Metrics | None = None) -> None:
    """Note an applied batch's share of one partition, in ``progress`` and in
    ``metrics`` (default: :func:`default_metrics`)."""
    progress.offset = next_offset
    progress.applied_events += len(events)
    progress.skipped_records += skipped
    if events:
        progress.last_event_ms = events[-1].timestamp_ms
        progress.lag_ms = max(0, now_ms - events[-1].timestamp_ms)
    (metrics or default_metrics()).projected(
        progress.partition, len(events), skipped, next_offset,
        progress.lag_ms / 1000 if events and progress.lag_ms is not None else None)


async def apply_batch(projection: Projection, store: OffsetStore | None, group: str,
                      events: Sequence[Event], offsets: Mapping[tuple[str, int], int],
                      metrics: Metrics | None = None) -> None:
    """Apply ``events``; on an offset store, with ``offsets`` in the same transaction
    (even when ``events`` is empty: skipped records must stay skipped). A batch that
    applied is counted, with its duration, in ``metrics`` (default:
    :func:`default_metrics`)."""
    started = time.perf_counter()
    if store is not None:
        await store.apply_events_with_offsets(events, group, dict(offsets))
    elif events:
        await projection.apply_events(events)
    else:
        return  # nothing was applied: no batch to count
    metrics = metrics or default_metrics()
    metrics.projector_batches.inc()
    metrics.projector_batch_seconds.observe(time.perf_counter() - started)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Projector:
    """Projects every partition of ``topic``, one task per partition (the engine's
    in-process projector, and the projector service on the embedded log)."""

    def __init__(self, log_: Log, topic: str, partitions: int, projection: Projection,
                 on_batch: OnBatch | None = None, *, batch_size: int = 2000,
                 group: str = DEFAULT_GROUP, now_ms: Callable[[], int] | None = None,
                 metrics: Metrics | None = None) -> None:
        self.log = log_
        self.topic = topic
        self.partitions = partitions
        self.projection = projection
        self.on_batch = on_batch
        self.batch_size = batch_size
        self.group = group
        self.positions = [0] * partitions
        self._store = offset_store(projection)
        self._now_ms = now_ms or wall_clock_ms
        self.metrics = metrics if metrics is not None else default_metrics()
        self._progress_of = [PartitionProgress(p) for p in range(partitions)]
        self._tasks: list[asyncio.Task[None]] = []
        self._progress = asyncio.Event()
        self._failure: BaseException | None = None

    async def start(self) -> None:
        if self._store is not None:
            for partition in range(self.partitions):
                stored = await self._store.committed_offset(self.group, self.topic, partition)
                self.positions[partition] = stored or 0
                self._progress_of[partition].offset = self.positions[partition]
        if isinstance(self.log, KafkaLog):
            # one long-polling consumer for every partition, and one database
            # transaction per fetch, instead of polling each partition
            self._tasks = [asyncio.create_task(self._follow(self.log), name="fm-projector")]
            return
        self._tasks = [asyncio.create_task(self._consume(p), name=f"fm-projector-{p}")
                       for p in range(self.partitions)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def progress(self) -> list[PartitionProgress]:
        """A copy of every partition's progress."""
        return [replace(p) for p in self._progress_of]

    @property
    def applied_events(self) -> int:
        return sum(p.applied_events for p in self._progress_of)

    def failure(self) -> BaseException | None:
        """The error that stopped a partition's projection, if one did."""
        return self._failure

    async def _consume(self, partition: int) -> None:
        try:
            await self._consume_partition(partition)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            log.exception("projecting %s[%d] stopped", self.topic, partition)
            raise

    async def _consume_partition(self, partition: int) -> None:
        offset = self.positions[partition]
        news_from = await self.log.end_offset(self.topic, partition)
        while True:
            records = await self.log.read(self.topic, partition, offset, self.batch_size)
            if not records:
                past = await self._past_markers(partition, offset)
                if past > offset:
                    offset = self.positions[partition] = self._progress_of[partition].offset = past
                    self._progress.set()
                else:
                    await self.log.wait_for(self.topic, partition, offset, 1.0)
                continue
            events, skipped = decode_records(records)
            offset = records[-1].offset + 1
            await self._apply(partition, events, offset)
            self.positions[partition] = offset
            record_progress(self._progress_of[partition], events, skipped, offset,
                            self._now_ms(), self.metrics)
            if self.on_batch is not None:
                self.on_batch(events, offset <= news_from)
            self._progress.set()

    async def _follow(self, kafka: KafkaLog) -> None:
        try:
            await self._follow_tail(kafka)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            log.exception("projecting %s stopped", self.topic)
            raise

    async def _follow_tail(self, kafka: KafkaLog) -> None:
        topic = self.topic
        news_from = {p: await self.log.end_offset(topic, p) for p in range(self.partitions)}
        tail = await kafka.tail(topic, dict(enumerate(self.positions)))
        try:
            while True:
                fetched = await tail.next(_TAIL_POLL_MS, self.batch_size)
                positions = await tail.positions()
                if not fetched:
                    self._advance(positions)
                    continue
                events: list[Event] = []
                replayed: list[Event] = []
                offsets: dict[tuple[str, int], int] = {}
                for partition, records in fetched.items():
                    decoded, skipped = decode_records(records)
                    next_offset = records[-1].offset + 1
                    offsets[(topic, partition)] = next_offset
                    (replayed if next_offset <= news_from[partition] else events).extend(decoded)
                    record_progress(self._progress_of[partition], decoded, skipped,
                                    next_offset, self._now_ms(), self.metrics)
                await self._apply_offsets(replayed + events, offsets)
                self._advance(positions)
                if self.on_batch is not None:
                    if replayed:
                        self.on_batch(replayed, True)
                    if events:
                        self.on_batch(events, False)
        finally:
            await tail.close()

    def _advance(self, positions: Mapping[int, int]) -> None:
        for partition, position in positions.items():
            if position > self.positions[partition]:
                self.positions[partition] = position
                self._progress_of[partition].offset = position
                self._progress.set()

    async def _past_markers(self, partition: int, offset: int) -> int:
        """Where reading can continue when nothing is readable at ``offset``.

        On Kafka, transaction markers and aborted records take offsets but are never
        read, so the end offset can stay above the last record's. If a read taken
        *after* the end offset still finds nothing, every offset below that end is
        such a marker or aborted record, and the position may move past them.
        """
        end = await self.log.end_offset(self.topic, partition)
        if end <= offset or await self.log.read(self.topic, partition, offset, 1):
            return offset
        return end

    async def _apply(self, partition: int, events: Sequence[Event], next_offset: int) -> None:
        await self._apply_offsets(events, {(self.topic, partition): next_offset})

    async def _apply_offsets(self, events: Sequence[Event],
                             offsets: Mapping[tuple[str, int], int]) -> None:
        """Apply one batch, retrying while the store is unavailable: the batch and its
        offsets land together, so a retry can neither lose nor double anything."""
        delay = _RETRY_FIRST_S
        while True:
            try:
                await apply_batch(self.projection, self._store, self.group, events, offsets,
                                  self.metrics)
                return
            except FlowMonkeyError as exc:
                if exc.code != STORE_ERROR:
                    raise
                log.warning("%s; retrying a batch of %s in %.1f s", exc, self.topic, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)

    async def caught_up(self) -> bool:
        for partition in range(self.partitions):
            if self.positions[partition] < await self.log.end_offset(self.topic, partition):
                return False
        return True

    async def wait_for_position(self, partition: int, offset: int, timeout_s: float) -> bool:
        """Read-your-writes: wait until the projection applied records below ``offset``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.positions[partition] < offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return True
