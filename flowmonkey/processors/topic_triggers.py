"""Topic triggers: start a flow for each record of an external Kafka topic, exactly
once (issue 13, kind ``topic``).

Each topic trigger has a consumer in its own group (the trigger's ``topic.group``, by
default ``<prefix>-trigger-<id>``) that reads the external topic with
``isolation_level=read_committed`` and commits nothing by itself. For each batch of a
partition it appends, in ONE Kafka transaction, a ``trigger.fire`` command per record
(or the record to the dead-letter topic with the reason,
:mod:`flowmonkey.processors.topic_fires`) and the consumed offsets
(``send_offsets_to_transaction``). A crash before the commit aborts the lot and the
records are read again from the committed offsets; after it, they are never read
again. A record read twice anyway (a zombie; see below) sends the same command id and
maps to the same execution id, so the processors still start one execution.

Fencing is as for the processors (:mod:`flowmonkey.processors.group`): aiokafka has
no KIP-447 group fencing, so the transactional id ``<group>.<topic>.<partition>``, one
writer per owned partition, is the fence. Taking a partition opens its writer first
(which fences the previous owner and settles its open transaction), then seeks to the
committed offset. A group with no committed offset starts at the topic's earliest
record. A failed append retires the writer; the partition is paused and taken again
(new writer, committed offset) after a backoff, or dropped if another member fenced it.

Records: JSON values only; a tombstone (null value) is dead-lettered like any other
value that is not JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from flowmonkey.errors import LogError
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.kafka_consumers import to_record
from flowmonkey.log.kafka_writer import KafkaWriter
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import TopicSettings, Trigger
from flowmonkey.processors.topic_fires import DEFAULT_MAX_VALUE_BYTES, fire_records

if TYPE_CHECKING:
    from flowmonkey.metrics import Metrics

log = logging.getLogger("flowmonkey.triggers.topic")

DEFAULT_MAX_POLL_RECORDS = 500
_POLL_MS = 100
_BACKOFF_S = 0.1
_BACKOFF_MAX_S = 10.0


def group_of(trigger: Trigger, topic_prefix: str) -> str:
    """The consumer group of a topic trigger: its ``topic.group`` or
    ``<prefix>-trigger-<id>``."""
    settings = _topic_settings(trigger)
    return settings.group or f"{topic_prefix}-trigger-{trigger.id}"


def _topic_settings(trigger: Trigger) -> TopicSettings:
    if trigger.topic is None:
        raise ValueError(f"trigger {trigger.id!r} is a {trigger.kind} trigger, not a topic "
                         "trigger")
    return trigger.topic


@dataclass(slots=True)
class _Partition:
    writer: KafkaWriter | None  # None: retired after a failure, waiting for retry_at
    failures: int = 0
    retry_at: float = 0.0


class TopicTriggerConsumer:
    """Consumes one topic trigger's external topic in its group (see the module
    docstring). ``start`` joins the group, ``stop`` leaves it after the batch in
    progress; :meth:`failure` gives the error that stopped it, if one did."""

    def __init__(self, log_: KafkaLog, topics: Topics, trigger: Trigger, *,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
                 max_poll_records: int = DEFAULT_MAX_POLL_RECORDS,
                 metrics: Metrics | None = None,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.log = log_
        self.topics = topics
        self.trigger = trigger
        self.topic = _topic_settings(trigger).topic
        self.group = group_of(trigger, topics.prefix)
        self.max_value_bytes = max_value_bytes
        self.max_poll_records = max_poll_records
        self.metrics = metrics
        self.clock_ms = clock_ms
        self.fired = 0
        self.dead_lettered = 0
        self.batches = 0
        self.owned: dict[int, _Partition] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        # a batch in progress, an assignment, a revocation: one at a time
        self._lock = asyncio.Lock()
        self._assigned = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._consumer = self.log.group_consumer(
            self.group, max_poll_records=self.max_poll_records,
            client_suffix=f"trigger-{self.trigger.id}")
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            await self._consumer.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            raise LogError(f"topic trigger {self.trigger.id!r}: cannot join group "
                           f"{self.group!r} on {self.topic!r}: {exc!r}") from exc
        self._task = asyncio.create_task(self._poll(), name=f"fm-trigger-{self.trigger.id}")

    async def stop(self) -> None:
        if self._task is not None:
            async with self._lock:  # the batch in progress is appended first
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        async with self._lock:
            await self._drop(list(self.owned))
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # leaving: the others take over now
                await self._consumer.stop()

    async def wait_assigned(self, timeout_s: float) -> bool:
        """Wait until this member took part in an assignment (possibly an empty one)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._assigned.wait(), timeout_s)
        return self._assigned.is_set()

    def failure(self) -> BaseException | None:
        """The error that stopped consuming, if one did."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    # ------------------------------------------------------------------ consuming

    async def _poll(self) -> None:
        delay = _BACKOFF_S
        while True:
            await self._retake_due()
            try:
                batches = await self._consumer.getmany(timeout_ms=_POLL_MS)
            except KafkaError as exc:
                if not getattr(exc, "retriable", False):
                    raise
                log.warning("trigger %s: fetching failed, retrying in %.1fs: %r",
                            self.trigger.id, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            delay = _BACKOFF_S
            if batches:
                async with self._lock:
                    await asyncio.gather(*(self._handle(tp, messages)
                                           for tp, messages in batches.items() if messages))

    async def _handle(self, tp: TopicPartition, messages: Sequence[Any]) -> None:
        owned = self.owned.get(tp.partition)
        if owned is None or owned.writer is None or tp.topic != self.topic:
            return  # revoked or retired meanwhile: read again from the committed offset
        records = [to_record(m) for m in messages]
        fires = fire_records(self.trigger, records, commands_topic=self.topics.commands,
                             dead_letter_topic=self.topics.dead_letter,
                             now_ms=self.clock_ms(), max_value_bytes=self.max_value_bytes)
        offsets = {(tp.topic, tp.partition): records[-1].offset + 1}
        writer = owned.writer
        try:
            if writer.transactional_id is not None:
                await writer.append(fires.records, commit_group=self.group,
                                    commit_offsets=offsets)
            else:  # at least once: records first, then the member's own commit
                await writer.append(fires.records)
                await self._consumer.commit({tp: offsets[(tp.topic, tp.partition)]})
        except (LogError, KafkaError) as exc:
            await self._retire(tp, owned, exc)
            return
        owned.failures = 0
        self.batches += 1
        self.fired += fires.fired
        self.dead_lettered += fires.dead_lettered
        if self.metrics is not None:
            self.metrics.topic_trigger_records(self.trigger.id, fires.fired,
                                               fires.dead_lettered)

    # ------------------------------------------------------------------ ownership

    async def _assign(self, assigned: Sequence[TopicPartition]) -> None:
        async with self._lock:
            mine = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
            await self._drop([p for p in self.owned if p not in mine])
            for partition in mine:
                if partition not in self.owned:
                    await self._take(partition)
            self._assigned.set()
            log.info("trigger %s: consuming %s partitions %s", self.trigger.id, self.topic,
                     sorted(self.owned))

    async def _revoke(self, revoked: Sequence[TopicPartition]) -> None:
        async with self._lock:
            await self._drop([tp.partition for tp in revoked if tp.topic == self.topic])

    async def _take(self, partition: int) -> None:
        """Own ``partition``: its writer first (the fence), then its committed offset.
        A failure leaves it paused, to be taken again after a backoff."""
        tp = TopicPartition(self.topic, partition)
        owned = self.owned.setdefault(partition, _Partition(None))
        try:
            owned.writer = await self.log.transactional(
                f"{self.group}.{self.topic}.{partition}", wait_visible=False)
            committed = await self._consumer.committed(tp)
            if committed is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)
            self._consumer.resume(tp)
        except (LogError, KafkaError) as exc:
            await self._retire(tp, owned, exc)

    async def _retire(self, tp: TopicPartition, owned: _Partition,
                      error: BaseException) -> None:
        """After a failure: close the writer and pause the partition; take it again
        after a backoff, unless another member fenced us (then it is theirs)."""
        writer, owned.writer = owned.writer, None
        fenced = writer is not None and writer.fenced
        if writer is not None:
            await writer.close()
        with contextlib.suppress(Exception):  # no longer assigned: nothing to pause
            self._consumer.pause(tp)
        if fenced:
            log.warning("trigger %s: partition %d of %s is another member's now; dropped",
                        self.trigger.id, tp.partition, self.topic)
            self.owned.pop(tp.partition, None)
            return
        owned.failures += 1
        delay = min(_BACKOFF_S * 2 ** (owned.failures - 1), _BACKOFF_MAX_S)
        owned.retry_at = time.monotonic() + delay
        log.warning("trigger %s: partition %d of %s failed (%d in a row), taking it again "
                    "in %.1fs: %r", self.trigger.id, tp.partition, self.topic,
                    owned.failures, delay, error)

    async def _retake_due(self) -> None:
        now = time.monotonic()
        due = [p for p, o in self.owned.items() if o.writer is None and o.retry_at <= now]
        if not due:
            return
        async with self._lock:
            assignment = {tp.partition for tp in self._consumer.assignment()
                          if tp.topic == self.topic}
            for partition in due:
                owned = self.owned.get(partition)
                if owned is None or owned.writer is not None:
                    continue
                if partition not in assignment:
                    self.owned.pop(partition, None)
                    continue
                await self._take(partition)

    async def _drop(self, partitions: Sequence[int]) -> None:
        for partition in partitions:
            owned = self.owned.pop(partition, None)
            if owned is not None and owned.writer is not None:
                await owned.writer.close()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: TopicTriggerConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.consumer._revoke(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.consumer._assign(assigned)


class TopicTriggers:
    """The consumers of several topic triggers, started and stopped together."""

    def __init__(self, log_: KafkaLog, topics: Topics, triggers: Sequence[Trigger], *,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
                 max_poll_records: int = DEFAULT_MAX_POLL_RECORDS,
                 metrics: Metrics | None = None) -> None:
        self.consumers = [
            TopicTriggerConsumer(log_, topics, trigger, max_value_bytes=max_value_bytes,
                                 max_poll_records=max_poll_records, metrics=metrics)
            for trigger in triggers if trigger.kind == "topic"]

    async def start(self) -> None:
        started: list[TopicTriggerConsumer] = []
        try:
            for consumer in self.consumers:
                await consumer.start()
                started.append(consumer)
        except BaseException:
            for consumer in started:
                await consumer.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))

    def failure(self) -> tuple[Trigger, BaseException] | None:
        for consumer in self.consumers:
            error = consumer.failure()
            if error is not None:
                return consumer.trigger, error
        return None
