"""Processors in a Kafka consumer group: each instance processes the commands
partitions the group assigns to it (DESIGN §4 "Rebalancing", "Exactly once").

For every partition this instance owns there is one :class:`PartitionProcessor` and
one writer. On exactly-once logs the writer is transactional with the id
``<group>.<commands topic>.<partition>``: opening it fences any older owner of the
partition (aiokafka has no KIP-447 group fencing, so the transactional id is the only
fence) and completes that owner's unfinished transaction, so what follows sees a
settled partition:

1. open the writer                    — fences the previous owner
2. rebuild state from the events partition (read_committed)
3. seek the consumer to the group's committed commands offset (committed in the same
   transactions as the events, so state and position agree exactly)
4. feed command records to the processor; a paused partition is backpressure.

On revoke the processor finishes the batch in progress, aborts its handlers and
timers and the partition's state is dropped: the next owner rebuilds it from the log.
A processor whose append fails is rebuilt the same way while the partition is still
ours; a fenced writer means another instance owns it now, so it is only dropped.

On an at-least-once log (``exactly_once=False``) the writer is idempotent and the
offsets are committed by this group member after the records: a crash in between
replays commands, which the kernel deduplicates by command id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from flowmonkey.errors import LogError
from flowmonkey.log.base import Log, OutRecord, Position
from flowmonkey.log.kafka import require_kafka
from flowmonkey.log.kafka_consumers import to_record
from flowmonkey.log.kafka_writer import KafkaWriter
from flowmonkey.processors.partition import Appender, PartitionProcessor

log = logging.getLogger("flowmonkey.processor.group")

ProcessorFactory = Callable[[int, Appender], PartitionProcessor]
"""Makes the processor of one partition, appending through the given writer and fed by
the group member (``pull_commands=False``)."""

_POLL_MS = 100
_REBUILD_BACKOFF_S = 0.1
_REBUILD_BACKOFF_MAX_S = 10.0


class _MemberCommitWriter:
    """At least once: records through the idempotent writer, then the offsets through
    the group member's own commit (a non-member commit is refused while the group has
    members)."""

    def __init__(self, writer: KafkaWriter, consumer: Any) -> None:
        self.writer = writer
        self.consumer = consumer

    async def append(
        self,
        records: Sequence[OutRecord],
        *,
        commit_group: str | None = None,
        commit_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> list[Position]:
        positions = await self.writer.append(records) if records else []
        if commit_offsets:
            try:
                await self.consumer.commit(
                    {TopicPartition(t, p): o for (t, p), o in commit_offsets.items()})
            except Exception as exc:  # a rebalance: the next owner sees them again
                log.warning("offsets not committed (the commands will be decided again "
                            "and deduplicated): %r", exc)
        return positions


@dataclass(slots=True)
class _Owned:
    processor: PartitionProcessor
    writer: KafkaWriter
    watcher: asyncio.Task[None] | None = None


class GroupProcessors:
    """Runs the processors of the commands partitions this group member owns."""

    def __init__(self, log_: Log, topic: str, group: str, factory: ProcessorFactory,
                 *, max_poll_records: int = 2000) -> None:
        self.log = require_kafka(log_, "GroupProcessors")
        self.topic = topic
        self.group = group
        self.factory = factory
        self.max_poll_records = max_poll_records
        self.owned: dict[int, _Owned] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # assignment, revocation and rebuilds, one at a time
        self._paused: set[TopicPartition] = set()
        self._assigned = asyncio.Event()
        self._closing = False
        self._failures: dict[int, int] = {}  # failed batches since the last assignment

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._consumer = self.log.group_consumer(
            self.group, max_poll_records=self.max_poll_records, client_suffix="processor")
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._poll(), name=f"fm-group-{self.group}")

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        async with self._lock:
            await self._drop(list(self.owned))
        if self._consumer is not None:
            # leaving the group lets the others take our partitions without waiting
            # for the session timeout
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    async def wait_assigned(self, timeout_s: float) -> bool:
        """Wait until this member took part in an assignment (possibly an empty one)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._assigned.wait(), timeout_s)
        return self._assigned.is_set()

    @property
    def processors(self) -> list[PartitionProcessor]:
        return [owned.processor for owned in self.owned.values()]

    # ------------------------------------------------------------------ feeding

    def failure(self) -> BaseException | None:
        """The error that stopped feeding the processors, if one did."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def _poll(self) -> None:
        consumer = self._consumer
        delay = _REBUILD_BACKOFF_S
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=_POLL_MS)
            except KafkaError as exc:
                # the consumer reconnects by itself; a retriable error is not the end
                if not getattr(exc, "retriable", False):
                    raise
                log.warning("fetching commands failed, retrying in %.1fs: %r", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _REBUILD_BACKOFF_MAX_S)
                continue
            delay = _REBUILD_BACKOFF_S
            for tp, messages in batches.items():
                owned = self.owned.get(tp.partition)
                if owned is None or tp.topic != self.topic:
                    continue  # revoked meanwhile; its next owner reads from the commit
                processor = owned.processor
                processor.feed([to_record(m) for m in messages])
                if not processor.has_room:
                    self._pause(tp)
            for tp in list(self._paused):
                owned = self.owned.get(tp.partition)
                if owned is not None and owned.processor.has_room:
                    self._paused.discard(tp)
                    consumer.resume(tp)

    def _pause(self, tp: TopicPartition) -> None:
        if tp not in self._paused:
            self._consumer.pause(tp)
            self._paused.add(tp)

    # ------------------------------------------------------------------ ownership

    async def _assign(self, assigned: Sequence[TopicPartition]) -> None:
        async with self._lock:
            mine = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
            await self._drop([p for p in self.owned if p not in mine])
            to_take = [p for p in mine if p not in self.owned]
            results = await asyncio.gather(*(self._take(p) for p in to_take),
                                           return_exceptions=True)
            for partition, result in zip(to_take, results, strict=True):
                if isinstance(result, BaseException):
                    # not ours to process after all: hold its records back until the
                    # next rebalance gives it to a member that can take it
                    log.error("could not take partition %d: %r", partition, result)
                    self._pause(TopicPartition(self.topic, partition))
            self._failures.clear()
            self._assigned.set()
            log.info("group %s: processing partitions %s", self.group, sorted(self.owned))

    async def _revoke(self, revoked: Sequence[TopicPartition]) -> None:
        async with self._lock:
            await self._drop([tp.partition for tp in revoked if tp.topic == self.topic])

    async def _take(self, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        writer = await self.log.transactional(f"{self.group}.{self.topic}.{partition}",
                                              wait_visible=False)
        processor: PartitionProcessor | None = None
        try:
            appender: Appender = writer if writer.transactional_id is not None else \
                _MemberCommitWriter(writer, self._consumer)
            processor = self.factory(partition, appender)
            await processor.start()
            committed = await self._consumer.committed(tp)
            if committed is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)
            if tp in self._paused:
                self._paused.discard(tp)
                self._consumer.resume(tp)
        except BaseException:
            if processor is not None:
                await processor.stop()
            await writer.close()
            raise
        owned = _Owned(processor, writer)
        self.owned[partition] = owned
        task = processor.loop_task
        if task is not None:
            owned.watcher = asyncio.create_task(self._watch(partition, owned, task))

    async def _drop(self, partitions: Sequence[int]) -> None:
        dropped = [self.owned.pop(p) for p in partitions if p in self.owned]
        for owned in dropped:
            if owned.watcher is not None and owned.watcher is not asyncio.current_task():
                owned.watcher.cancel()
        await asyncio.gather(*(self._close(owned) for owned in dropped))
        # a new assignment starts unpaused; forget pauses of partitions we let go
        self._paused -= {TopicPartition(self.topic, p) for p in partitions}

    @staticmethod
    async def _close(owned: _Owned) -> None:
        try:
            await owned.processor.stop()
        finally:
            await owned.writer.close()

    async def _watch(self, partition: int, owned: _Owned, task: asyncio.Task[None]) -> None:
        """A processor whose batch failed has state the log does not: rebuild it, after
        a backoff that grows while the failures repeat (a broker outage, or a bug that
        fails the same batch again) so a failing partition does not spin."""
        await asyncio.wait([task])  # never raises the task's error; our cancel does
        if self._closing or task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        tp = TopicPartition(self.topic, partition)
        async with self._lock:
            if self.owned.get(partition) is not owned:
                return
            await self._drop([partition])
            if isinstance(error, LogError) and error.code == "LOG_FENCED":
                log.warning("partition %d: another instance owns it now; dropped", partition)
                return
            self._pause(tp)
        failures = self._failures[partition] = self._failures.get(partition, 0) + 1
        delay = min(_REBUILD_BACKOFF_S * 2 ** (failures - 1), _REBUILD_BACKOFF_MAX_S)
        log.warning("partition %d: rebuilding in %.1fs after a failed batch (%d since the "
                    "last rebalance): %r", partition, delay, failures, error)
        await asyncio.sleep(delay)
        async with self._lock:
            if partition in self.owned or tp not in self._consumer.assignment():
                return  # a rebalance happened meanwhile and settled it
            try:
                await self._take(partition)
            except Exception as exc:
                log.error("partition %d could not be rebuilt: %r; it waits for the next "
                          "rebalance", partition, exc)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: GroupProcessors) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.service._revoke(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.service._assign(assigned)
