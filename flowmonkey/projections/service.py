"""The projector service: projectors as processes of their own, scaling out on Kafka.

On Kafka every :class:`ProjectorService` with the same ``group`` joins one consumer
group over the events topic, so the partitions are split among the running
instances and move when one joins, leaves or dies. Offsets live in the projection's
database, not in Kafka (aiokafka's "storing offsets outside Kafka"):

1. On assignment, each assigned partition is positioned at the offset stored for the
   group in Postgres (offset 0 when none is stored; the consumer resets to the
   earliest offset if retention removed it). If Postgres cannot be read, the
   partition stays paused and is positioned again before the next fetch.
2. Each fetched batch (any of the owned partitions) is applied in one database
   transaction together with the next offset of every partition in it. A crash
   before the commit loses the whole batch, rows and offsets alike, and the next
   owner applies it again; a crash after it loses nothing.
3. On revocation the batch in progress finishes (the rebalance listener waits for
   it) before the partitions go, so the next owner starts where this one stopped.
   Records fetched across a rebalance are dropped and fetched again from the
   offsets the assignment loaded.
4. Each batch names, per partition, the offset it continues from, and the database
   refuses it if the stored offset is behind that (a crash lost acknowledged commits,
   or the offsets were reset): see ``projector.py``. When the database refuses or
   fails a batch, every owned partition is paused and positioned again at the offset
   read back from the database (after a backoff if it failed), so a lost batch is
   fetched and applied again, never skipped. A stored offset past the partition's
   end stops the projector with ``OffsetPastEndError``.
5. A crash can lose the last batches of a partition that gets no new events (no
   batch is refused then), so between fetches, every ``VERIFY_EVERY_S`` seconds and
   at once after the database connection was replaced (a restart of PostgreSQL), the
   stored offsets of every owned partition are compared with the ones this member
   wrote (one query); a partition whose stored offset is behind is positioned again
   at it, as in 4.

On the embedded log (one process owns it) the service runs a
:class:`~flowmonkey.projections.projector.Projector` over all partitions, with the
same offsets-in-the-transaction rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.events.envelope import Event
from flowmonkey.log.base import Log
from flowmonkey.log.kafka import require_kafka
from flowmonkey.log.kafka_consumers import to_record
from flowmonkey.log.topics import Topics, topics_of
from flowmonkey.projections.base import Projection
from flowmonkey.projections.projector import (
    DEFAULT_GROUP,
    OFFSET_CONFLICT,
    STORE_ERROR,
    VERIFY_EVERY_S,
    OffsetPastEndError,
    OnBatch,
    PartitionProgress,
    Projector,
    StoredCheck,
    apply_batch,
    decode_records,
    offset_store,
    record_progress,
    stored_position,
    wall_clock_ms,
)

log = logging.getLogger("flowmonkey.projector")

_POLL_MS = 500
_RETRY_FIRST_S = 0.1
_RETRY_MAX_S = 5.0


class ProjectorService:
    """Keeps ``projection`` up to date with the events topic of ``log_`` (named by
    its ``topic_prefix``; one given here must be the log's).

    ``start()`` starts the log and the projection (a Postgres projection runs its
    migrations) and begins projecting; ``stop()`` finishes the batch in progress,
    leaves the consumer group and closes both. On Kafka the events topic must exist
    (``flowmonkey topics create``); on the embedded log the topics are created.
    """

    def __init__(self, log_: Log, projection: Projection, *,
                 topic_prefix: str | None = None, group: str = DEFAULT_GROUP,
                 batch_size: int = 1000, on_batch: OnBatch | None = None,
                 now_ms: Callable[[], int] | None = None,
                 verify_every_s: float = VERIFY_EVERY_S) -> None:
        self.log = log_
        self.projection = projection
        self.topics: Topics = topics_of(log_, topic_prefix, owner="ProjectorService")
        self.verify_every_s = verify_every_s
        self.group = group
        self.batch_size = batch_size
        self.on_batch = on_batch
        self.partitions = 0
        self._now_ms = now_ms or wall_clock_ms
        self._runner: Projector | GroupProjector | None = None  # kept after stop, for stats
        self._running = False

    @property
    def topic(self) -> str:
        return self.topics.events

    async def start(self) -> None:
        if self._running:
            return
        await self.log.start()
        try:
            await self.projection.start()
            capabilities = self.log.capabilities
            if not capabilities.shared_topics:
                await self.log.create_topics(
                    self.topics.specs(capabilities.default_partitions))
            # on Kafka this is also the check that the topic exists, with a message
            # that says how to create it
            self.partitions = await self.log.partitions_for(self.topic)
            runner: Projector | GroupProjector
            if capabilities.consumer_groups:
                runner = GroupProjector(self.log, self.topic, self.projection, self.group,
                                        batch_size=self.batch_size, on_batch=self.on_batch,
                                        now_ms=self._now_ms,
                                        verify_every_s=self.verify_every_s)
            else:
                runner = Projector(self.log, self.topic, self.partitions, self.projection,
                                   self.on_batch, batch_size=self.batch_size,
                                   group=self.group, now_ms=self._now_ms,
                                   verify_every_s=self.verify_every_s)
            await runner.start()
        except BaseException:
            await self._close_backends()
            raise
        self._runner = runner
        self._running = True

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._runner is not None:
            await self._runner.stop()
        await self._close_backends()

    async def _close_backends(self) -> None:
        try:
            await self.projection.close()
        finally:
            await self.log.close()

    def progress(self) -> list[PartitionProgress]:
        """The progress of each partition this instance owns (owned last, once stopped)."""
        return [] if self._runner is None else self._runner.progress()

    @property
    def applied_events(self) -> int:
        """Events applied by this instance since it started (all partitions ever owned)."""
        return 0 if self._runner is None else self._runner.applied_events

    def failure(self) -> BaseException | None:
        """The error that stopped projecting, if one did (the service is then idle)."""
        return None if self._runner is None else self._runner.failure()


class GroupProjector(ConsumerRebalanceListener):  # type: ignore[misc]
    """A member of the projector consumer group on Kafka (see the module docstring)."""

    def __init__(self, log_: Log, topic: str, projection: Projection, group: str, *,
                 batch_size: int = 1000, on_batch: OnBatch | None = None,
                 now_ms: Callable[[], int] | None = None,
                 verify_every_s: float = VERIFY_EVERY_S) -> None:
        self.log = require_kafka(log_, "GroupProjector")
        self.topic = topic
        self.projection = projection
        self.group = group
        self.batch_size = batch_size
        self.on_batch = on_batch
        self._store = offset_store(projection)
        self._check = None if self._store is None else StoredCheck(self._store,
                                                                   verify_every_s)
        self._now_ms = now_ms or wall_clock_ms
        self._consumer: Any = self.log.group_consumer(group, max_poll_records=batch_size,
                                                  client_suffix="projector")
        self._lock = asyncio.Lock()  # one batch or one rebalance step at a time
        self._owned: dict[int, PartitionProgress] = {}
        self._unpositioned: set[int] = set()
        self._fresh: set[int] = set()  # assigned, not yet positioned once
        self._news_from: dict[int, int] = {}
        self._generation = 0  # bumped by every rebalance step: older fetches are stale
        self._applied_before = 0  # events applied from partitions no longer owned
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._consumer.subscribe([self.topic], listener=self)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"fm-projector-{self.group}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            # holding the lock, the loop is between batches: cancelling it interrupts
            # a fetch or a backoff, never a transaction
            async with self._lock:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # leaves the group: the partitions go to the other members right away
        await self._consumer.stop()

    def progress(self) -> list[PartitionProgress]:
        return [replace(p) for _, p in sorted(self._owned.items())]

    @property
    def applied_events(self) -> int:
        return self._applied_before + sum(p.applied_events for p in self._owned.values())

    def failure(self) -> BaseException | None:
        return self._failure

    # ------------------------------------------------------------------ rebalancing

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self._lock:  # waits for the batch in progress to commit
            self._generation += 1
            for tp in revoked:
                gone = self._owned.pop(tp.partition, None)
                if gone is not None:
                    self._applied_before += gone.applied_events
                self._unpositioned.discard(tp.partition)
                self._fresh.discard(tp.partition)
                self._news_from.pop(tp.partition, None)
        log.info("projector %s: partitions revoked: %s", self.group,
                 sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        async with self._lock:
            self._generation += 1
            for partition in partitions:
                if partition not in self._owned:
                    self._owned[partition] = PartitionProgress(partition)
                    self._fresh.add(partition)
                self._unpositioned.add(partition)
            await self._position(partitions)
        log.info("projector %s: partitions assigned: %s", self.group, partitions)

    async def _position(self, partitions: Iterable[int]) -> None:
        """Seek each partition to its stored offset; one that cannot be read yet stays
        paused (nothing is fetched for it) until a later call succeeds."""
        for partition in partitions:
            tp = TopicPartition(self.topic, partition)
            try:
                stored = None if self._store is None else await stored_position(
                    self._store, self.log, self.group, self.topic, partition)
                if self.on_batch is not None and partition not in self._news_from:
                    self._news_from[partition] = await self.log.end_offset(self.topic,
                                                                           partition)
            except OffsetPastEndError as exc:
                # never followed: the partition stays paused and the projector stops
                self._consumer.pause(tp)
                self._failure = exc
                log.error("projector %s: %s", self.group, exc)
                continue
            except Exception as exc:
                self._consumer.pause(tp)
                log.warning("projector %s: cannot read the stored offset of %s[%d] yet "
                            "(%s: %s); the partition waits", self.group, self.topic,
                            partition, type(exc).__name__, exc)
                continue
            # seeking below the log start makes the consumer reset to the earliest offset
            progress = self._owned[partition]
            if stored is not None and stored != progress.offset and \
                    partition not in self._fresh:
                log.warning("projector %s: the offset stored for %s[%d] is %d, not %d as "
                            "last written: continuing from the stored one", self.group,
                            self.topic, partition, stored, progress.offset)
            self._fresh.discard(partition)
            self._consumer.seek(tp, stored or 0)
            progress.offset = stored or 0
            self._unpositioned.discard(partition)
            self._consumer.resume(tp)

    # ------------------------------------------------------------------ consuming

    async def _run(self) -> None:
        try:
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = exc
            log.exception("projector %s stopped", self.group)

    async def _consume(self) -> None:
        delay = _RETRY_FIRST_S
        while True:
            if self._failure is not None:
                raise self._failure
            if self._check is not None and self._check.due():
                async with self._lock:
                    await self._check_stored(self._check)
            if self._unpositioned:
                async with self._lock:
                    await self._position(sorted(self._unpositioned))
                if self._unpositioned:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX_S)
            generation = self._generation
            fetched = await self._consumer.getmany(timeout_ms=_POLL_MS,
                                                   max_records=self.batch_size)
            if not fetched:
                continue
            failed = False
            async with self._lock:
                if generation != self._generation:
                    # a rebalance step ran during the fetch: the consumer's position has
                    # moved past these records, so fetch them again from the offsets
                    # the assignment just loaded
                    self._rewind(fetched)
                    continue
                try:
                    await self._apply(fetched)
                    delay = _RETRY_FIRST_S
                except FlowMonkeyError as exc:
                    if exc.code == OFFSET_CONFLICT:
                        log.warning("projector %s: %s", self.group, exc)
                    elif exc.code == STORE_ERROR:
                        log.warning("projector %s: %s; reading the stored offsets again "
                                    "in %.1f s", self.group, exc, delay)
                        failed = True
                    else:
                        raise
                    # the store may hold less than this projector wrote (a crash lost
                    # commits) or more: every owned partition continues from what it
                    # holds, read again before the next fetch
                    self._unposition(self._owned)
            if failed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)

    async def _apply(self, fetched: Mapping[TopicPartition, Sequence[Any]]) -> None:
        batch: list[Event] = []
        offsets: dict[tuple[str, int], int] = {}
        parts: list[tuple[PartitionProgress, list[Event], int, int]] = []
        for tp, messages in fetched.items():
            progress = self._owned.get(tp.partition)
            if progress is None or tp.topic != self.topic or tp.partition in self._unpositioned:
                continue
            fresh = [m for m in messages if m.offset >= progress.offset]
            if not fresh:
                continue
            events, skipped = decode_records(to_record(m) for m in fresh)
            next_offset = fresh[-1].offset + 1
            batch.extend(events)
            offsets[(self.topic, tp.partition)] = next_offset
            parts.append((progress, events, skipped, next_offset))
        if not offsets:
            return
        # each partition continues from its stored offset as last read or written
        since = {(topic, partition): self._owned[partition].offset
                 for topic, partition in offsets}
        await apply_batch(self.projection, self._store, self.group, batch, offsets,
                          since=since)
        now = self._now_ms()
        for progress, events, skipped, next_offset in parts:
            record_progress(progress, events, skipped, next_offset, now)
            if self.on_batch is not None:
                news_from = self._news_from.get(progress.partition, 0)
                self.on_batch(events, next_offset <= news_from)

    async def _check_stored(self, check: StoredCheck) -> None:
        """Position again the owned partitions whose stored offset is behind what this
        member wrote (a crash lost their last commits; with the lock held, no batch
        commits meanwhile)."""
        written = {p: progress.offset for p, progress in self._owned.items()
                   if p not in self._unpositioned}
        if written:
            self._unposition(await check.behind(self.group, self.topic, written))

    def _unposition(self, partitions: Iterable[int]) -> None:
        """Pause ``partitions`` until they are positioned at their stored offsets."""
        for partition in partitions:
            self._consumer.pause(TopicPartition(self.topic, partition))
            self._unpositioned.add(partition)

    def _rewind(self, fetched: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Fetch what was fetched but not applied again, from the stored offsets."""
        for tp in fetched:
            progress = self._owned.get(tp.partition)
            if progress is not None and tp.partition not in self._unpositioned:
                self._consumer.seek(tp, progress.offset)

