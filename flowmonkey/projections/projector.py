"""The projector: consumes the events topic and applies batches to a projection.

On a projection that stores its own offsets (:class:`OffsetStore`, e.g. Postgres) each
partition starts at the offset stored for the projector's group, and every batch is
applied together with its partition's next offset in one database transaction: a
restarted projector resumes exactly where the last one stopped and applies nothing
twice. The memory projection starts from offset 0 every time (its state is rebuilt
from the log on each start).

The projector never trusts its own idea of what is stored. Each batch names the
offset it continues from (the stored offset the projector last read or wrote), and
the store refuses the batch if what it holds is behind that (a compare-and-set in the
batch's transaction): a database that crashed and lost acknowledged commits, or
offsets reset behind the projector's back. After such a refusal, and after any
failure of the store, the projector reads the stored offsets again and applies from
there, so a lost batch is applied again, never skipped.

A crash can also lose the last batches of a partition that then gets no new events:
no batch would ever be refused. So the projector also compares the stored offsets
with the ones it wrote (one query for every partition) every
:data:`VERIFY_EVERY_S` seconds, and at once when the store opened a new connection
(the pool replaces the ones a PostgreSQL restart broke); a partition whose stored
offset is behind is read again from there, as after a refused batch. A stored offset past the end
of the log is never followed: the projector stops with :class:`OffsetPastEndError`
(the log lost records the projection has, or the topic was made again).

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
from flowmonkey.log.kafka import KafkaLog, require_kafka
from flowmonkey.log.kafka_consumers import KafkaTail
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

OFFSET_CONFLICT = "PROJECTION_OFFSET_CONFLICT"
"""The code of ``OffsetConflictError``: a stored offset is behind the one a batch
continues from; nothing of the batch was stored."""

_RETRY_FIRST_S = 0.1
_TAIL_POLL_MS = 200
_RETRY_MAX_S = 5.0
_WATCH_TICK_S = 0.25  # how often the store's connection count is looked at (no I/O)

VERIFY_EVERY_S = 2.0
"""How often a projector compares the offsets stored for its partitions with the ones
it wrote (sooner after the store reconnected), so that batches a database crash lost
are applied again even when no new event comes."""


@runtime_checkable
class OffsetStore(Protocol):
    """A projection that stores consumer offsets in the same transaction as the rows
    they produced (``PostgresProjection``)."""

    async def apply_events_with_offsets(
        self, events: Sequence[Event], group: str | None, offsets: dict[tuple[str, int], int],
        *, since: Mapping[tuple[str, int], int],
    ) -> None:
        """Apply ``events`` and store ``offsets`` in one transaction, unless a stored
        offset is behind the one in ``since`` (raise ``OffsetConflictError``)."""

    async def committed_offset(self, group: str, topic: str, partition: int) -> int | None: ...

    async def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Every partition's stored offset (partitions with none left out)."""

    @property
    def connections_opened(self) -> int:
        """Connections the store has opened: growing after a reconnect."""


def offset_store(projection: Projection) -> OffsetStore | None:
    """``projection`` as an offset store, or None when it stores no offsets. One that
    stores them but lacks part of the protocol is refused by name: taken for a plain
    projection, it would run without its offsets' checks and stored positions."""
    if isinstance(projection, OffsetStore):
        return projection
    if hasattr(projection, "apply_events_with_offsets"):
        missing = [name for name in ("committed_offset", "committed_offsets",
                                     "connections_opened") if not hasattr(projection, name)]
        raise TypeError(f"{type(projection).__name__} stores offsets with its rows "
                        f"(apply_events_with_offsets) but lacks {', '.join(missing)} of "
                        "flowmonkey.projections.projector.OffsetStore")
    return None


class OffsetPastEndError(FlowMonkeyError):
    """The offset stored for a partition is past the end of the log's partition."""

    code = "PROJECTION_OFFSET_PAST_END"


async def stored_position(store: OffsetStore, log_: Log, group: str, topic: str,
                          partition: int) -> int:
    """The offset stored for ``group`` on ``topic[partition]`` (0 when none), checked
    against the log's end. Raises :class:`OffsetPastEndError` when it is past the end:
    continuing from there would skip whatever the log appends below it, and the rows
    the projection holds for the missing offsets come from records the log no longer
    has. The stored offset is read first, so a log growing meanwhile cannot make a
    sound offset look past the end."""
    stored = await store.committed_offset(group, topic, partition) or 0
    end = await log_.end_offset(topic, partition)
    if stored > end:
        raise OffsetPastEndError(
            f"the projection's offset for group {group!r} on {topic}[{partition}] is "
            f"{stored}, past the end of the log's partition ({end}): the log has lost "
            "records the projection applied, or the topic was deleted and created again. "
            "The projector will not continue from a position the log does not have. "
            "Repair the log first if it is damaged (flowmonkey log check), then rebuild "
            "the projection from the log (flowmonkey rebuild --into NEW_SCHEMA --swap).",
            group=group, topic=topic, partition=partition, stored=stored, end=end)
    return stored


class StoredCheck:
    """When and how a projector compares the offsets its store holds with the ones it
    wrote: every ``every_s`` seconds, and at once after the store opened a connection
    (so after PostgreSQL restarted, or restarted its processes after a crash, and the
    pool replaced the broken connections). Costs one query per check; nothing per
    batch (the batch's compare-and-set covers its own partitions)."""

    def __init__(self, store: OffsetStore, every_s: float = VERIFY_EVERY_S) -> None:
        self._store = store
        self.every_s = every_s
        self._connections = store.connections_opened
        self._next = time.monotonic() + every_s
        self._failing = False

    def due(self) -> bool:
        return self._store.connections_opened != self._connections or \
            time.monotonic() >= self._next

    async def behind(self, group: str, topic: str, written: Mapping[int, int]) -> list[int]:
        """The partitions of ``written`` (partition -> the offset last read or written)
        whose stored offset is behind it: the store lost commits. Taken before the
        query, ``written`` can only be at or below a sound stored offset (a batch
        committing meanwhile moves the stored one up). A store that cannot be read
        gives none (logged once until it can: every batch fails then anyway)."""
        self._connections = self._store.connections_opened
        self._next = time.monotonic() + self.every_s
        try:
            stored = await self._store.committed_offsets(group, topic)
        except FlowMonkeyError as exc:
            if exc.code != STORE_ERROR:
                raise
            if not self._failing:
                log.warning("%s; checking them again every %.0f s", exc, self.every_s)
            self._failing = True
            return []
        self._failing = False
        return [partition for partition, offset in written.items()
                if stored.get(partition, 0) < offset]


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
    lost: list[Record] = []  # placeholders for records lost to damage: one line for all
    for record in records:
        if record.lost:
            lost.append(record)
            continue
        try:
            events.append(decode_record(record))
        except Exception as exc:  # any failure: a bad record must never stop a partition
            skipped += 1
            log.error("skipping undecodable event %s:%d:%d: %s: %s", record.topic,
                      record.partition, record.offset, type(exc).__name__, exc)
    if lost:
        log.warning("%s:%d: skipped %d placeholder record(s) for events lost to damage "
                    "(offsets %d..%d; see `flowmonkey log repair`)", lost[0].topic,
                    lost[0].partition, len(lost), lost[0].offset, lost[-1].offset)
    return events, skipped + len(lost)


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
                      metrics: Metrics | None = None, *,
                      since: Mapping[tuple[str, int], int] | None = None) -> None:
    """Apply ``events``; on an offset store, with ``offsets`` in the same transaction
    (even when ``events`` is empty: skipped records must stay skipped), checked against
    ``since`` (required with a store: the offset each partition continues from). A
    batch that applied is counted, with its duration, in ``metrics`` (default:
    :func:`default_metrics`)."""
    started = time.perf_counter()
    if store is not None:
        if since is None:
            raise ValueError("a batch for an offset store needs the offsets it continues "
                             "from (since)")
        await store.apply_events_with_offsets(events, group, dict(offsets), since=since)
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
                 metrics: Metrics | None = None,
                 verify_every_s: float = VERIFY_EVERY_S) -> None:
        self.log = log_
        self.topic = topic
        self.partitions = partitions
        self.projection = projection
        self.on_batch = on_batch
        self.batch_size = batch_size
        self.group = group
        self.positions = [0] * partitions
        """Per partition, the next offset to read: every record below it is applied."""
        self._stored = [0] * partitions
        """Per partition, the offset the store holds as far as this projector knows (last
        read or written): the ``since`` of the next batch. ``positions`` can be ahead of
        it by records that are never applied (Kafka's transaction markers)."""
        self._store_failures = 0  # bumped by every failed batch, of any partition
        self._seen_failures = [0] * partitions  # per partition: failures it re-read after
        self._retry_s = [_RETRY_FIRST_S] * partitions  # the wait after a failed batch
        self._lost: set[int] = set()  # partitions the store holds less of than written
        self._store = offset_store(projection)
        self._verify_every_s = verify_every_s
        self._now_ms = now_ms or wall_clock_ms
        self.metrics = metrics if metrics is not None else default_metrics()
        self._progress_of = [PartitionProgress(p) for p in range(partitions)]
        self._tasks: list[asyncio.Task[None]] = []
        self._progress = asyncio.Event()
        self._failure: BaseException | None = None

    async def start(self) -> None:
        if self._store is not None:
            for partition in range(self.partitions):
                stored = await stored_position(self._store, self.log, self.group,
                                               self.topic, partition)
                self._moved_to(partition, stored)
        if self.log.capabilities.tail:
            # one long-polling consumer for every partition, and one database
            # transaction per fetch, instead of polling each partition
            kafka = require_kafka(self.log, "the projector's tail")
            self._tasks = [asyncio.create_task(self._follow(kafka), name="fm-projector")]
        else:
            self._tasks = [asyncio.create_task(self._consume(p), name=f"fm-projector-{p}")
                           for p in range(self.partitions)]
        if self._store is not None:
            self._tasks.append(asyncio.create_task(
                self._watch(StoredCheck(self._store, self._verify_every_s)),
                name="fm-projector-watch"))

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

    def _moved_to(self, partition: int, stored: int) -> None:
        """Continue ``partition`` from ``stored``, the offset the store holds."""
        self._stored[partition] = stored
        self.positions[partition] = self._progress_of[partition].offset = stored

    async def _reread(self, partition: int) -> int:
        """Read ``partition``'s stored offset again (waiting while the store cannot be
        read) and continue from it, or from this projector's own last written offset
        if that is lower: after a failed batch the store may hold less than this
        projector wrote (a crash lost commits), or more (another projector of the
        group, or a commit whose answer was lost)."""
        store = self._store
        assert store is not None
        self._lost.discard(partition)
        delay = _RETRY_FIRST_S
        while True:
            failures = self._store_failures
            try:
                stored = await stored_position(store, self.log, self.group, self.topic,
                                               partition)
            except FlowMonkeyError as exc:
                if exc.code != STORE_ERROR:
                    raise
                log.warning("%s; reading it again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            self._seen_failures[partition] = failures
            written = self._stored[partition]
            if stored < written:
                log.warning("the offset stored for %s[%d] is %d, not %d as last written: "
                            "applying again from the stored one", self.topic, partition,
                            stored, written)
            # Ahead of what this projector wrote (another projector of the group, or a
            # commit whose answer was lost), it goes on from its own offset: applying
            # again changes no row, and its listeners (an engine's waiters) hear every
            # event. Behind it, from the stored one: what the store lost comes again.
            position = min(stored, written)
            self._moved_to(partition, position)
            self._progress.set()
            return position

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
            if self._store is not None and (
                    self._seen_failures[partition] != self._store_failures
                    or partition in self._lost):
                # the store failed (this partition's batch or another's), or holds less
                # than this projector last wrote (a crash lost commits): continue from
                # what it holds
                offset = await self._reread(partition)
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
            next_offset = records[-1].offset + 1
            if not await self._apply(partition, events, next_offset):
                continue  # read again from the stored offset (at the top of the loop)
            offset = self.positions[partition] = next_offset
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
        news_from = {p: await self.log.end_offset(self.topic, p)
                     for p in range(self.partitions)}
        while True:
            tail = await kafka.tail(self.topic, dict(enumerate(self.positions)))
            try:
                await self._follow_from(tail, news_from)
            finally:
                await tail.close()
            # a batch failed, or the store lost commits: continue every partition from
            # what the store holds
            for partition in range(self.partitions):
                await self._reread(partition)

    async def _follow_from(self, tail: KafkaTail, news_from: Mapping[int, int]) -> None:
        """Apply what ``tail`` reads until a batch fails (then return)."""
        topic = self.topic
        while True:
            if self._lost:
                return  # the store lost commits (see _watch)
            fetched = await tail.next(_TAIL_POLL_MS, self.batch_size)
            positions = await tail.positions()
            if not fetched:
                self._advance(positions)
                continue
            events: list[Event] = []
            replayed: list[Event] = []
            offsets: dict[tuple[str, int], int] = {}
            parts: list[tuple[int, list[Event], int, int]] = []
            for partition, records in fetched.items():
                decoded, skipped = decode_records(records)
                next_offset = records[-1].offset + 1
                offsets[(topic, partition)] = next_offset
                (replayed if next_offset <= news_from[partition] else events).extend(decoded)
                parts.append((partition, decoded, skipped, next_offset))
            if not await self._apply_offsets(replayed + events, offsets):
                return
            now = self._now_ms()
            for partition, decoded, skipped, next_offset in parts:
                record_progress(self._progress_of[partition], decoded, skipped,
                                next_offset, now, self.metrics)
            self._advance(positions)
            if self.on_batch is not None:
                if replayed:
                    self.on_batch(replayed, True)
                if events:
                    self.on_batch(events, False)

    async def _watch(self, check: StoredCheck) -> None:
        """Mark the partitions whose stored offset is behind what this projector wrote
        (a crash lost their last commits), checked every ``check.every_s`` and after
        the store reconnected; their consumers read the stored offsets again."""
        try:
            while True:
                await asyncio.sleep(_WATCH_TICK_S)
                if check.due():
                    written = dict(enumerate(self._stored))
                    self._lost.update(await check.behind(self.group, self.topic, written))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            log.exception("checking the offsets stored for %s stopped", self.topic)
            raise

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

    async def _apply(self, partition: int, events: Sequence[Event], next_offset: int) -> bool:
        return await self._apply_offsets(events, {(self.topic, partition): next_offset})

    async def _apply_offsets(self, events: Sequence[Event],
                             offsets: Mapping[tuple[str, int], int]) -> bool:
        """Apply one batch; False if the store failed or refused it. The batch and its
        offsets land together or not at all, so the caller reads again from the stored
        offsets (nothing lost, nothing doubled). The memory projection never fails."""
        since = {(topic, partition): self._stored[partition] for topic, partition in offsets}
        try:
            await apply_batch(self.projection, self._store, self.group, events, offsets,
                              self.metrics, since=since)
        except FlowMonkeyError as exc:
            if exc.code == OFFSET_CONFLICT:
                log.warning("%s; reading %s again from the stored offsets", exc, self.topic)
            elif exc.code == STORE_ERROR:
                # doubling while batches keep failing; reading the offsets waits too
                delay = max(self._retry_s[p] for _, p in offsets)
                log.warning("%s; reading the stored offsets of %s again in %.1f s", exc,
                            self.topic, delay)
                await asyncio.sleep(delay)
                for _, partition in offsets:
                    self._retry_s[partition] = min(delay * 2, _RETRY_MAX_S)
            else:
                raise
            self._store_failures += 1
            return False
        for (_, partition), next_offset in offsets.items():
            self._stored[partition] = next_offset
            self._retry_s[partition] = _RETRY_FIRST_S
        return True

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
