"""The consumers behind :class:`~flowmonkey.log.kafka.KafkaLog`'s reads: a reader per
partition, the tail that follows a topic, and the client that commits a group's
offsets without joining it. All read with ``isolation_level=read_committed`` (the
log builds their consumers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition

from flowmonkey.errors import LogError
from flowmonkey.log.base import Record
from flowmonkey.log.kafka_writer import stop_quietly

Offsets = Mapping[tuple[str, int], int]
EndOffsets = Callable[[Sequence[TopicPartition]], Awaitable[dict[TopicPartition, int]]]

REQUEST_TIMEOUT_MS = 30_000
READ_POLL_MS = 50


class PartitionReader:
    """A read_committed consumer assigned to one partition. Sequential reads continue
    from what the consumer already fetched; any other offset seeks. ``end_offsets``
    gives the partition's stable end (the log's, which caches and scrubs errors)."""

    def __init__(self, consumer: Any, tp: TopicPartition, end_offsets: EndOffsets) -> None:
        self.tp = tp
        self.consumer = consumer
        self._end_offsets = end_offsets
        self.lock = asyncio.Lock()
        self._next: int | None = None  # the offset after the last record returned

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign([self.tp])

    async def close(self) -> None:
        await stop_quietly(self.consumer)

    async def read(self, offset: int, max_records: int) -> list[Record]:
        async with self.lock:
            records = await self._read(offset, max(1, max_records))
            if records:
                self._next = records[-1].offset + 1
            return [to_record(m) for m in records if m.offset >= offset]

    async def _read(self, offset: int, max_records: int) -> list[Any]:
        tp = self.tp
        if offset == self._next:
            batch = await self.consumer.getmany(tp, timeout_ms=0, max_records=max_records)
            if batch.get(tp):
                return list(batch[tp])
        stable = (await self._end_offsets([tp]))[tp]
        if offset >= stable:
            # never seek past the end: the consumer would reset to the earliest offset
            return []
        if offset != self._next:
            self.consumer.seek(tp, offset)
            self._next = offset
        deadline = time.monotonic() + REQUEST_TIMEOUT_MS / 1000
        while True:
            batch = await self.consumer.getmany(
                tp, timeout_ms=READ_POLL_MS, max_records=max_records
            )
            if batch.get(tp):
                return list(batch[tp])
            if await self.consumer.position(tp) >= stable:
                return []  # only transaction markers or aborted records were left
            if time.monotonic() > deadline:
                raise LogError(f"no records arrived from {tp.topic}[{tp.partition}] in time")


class KafkaTail:
    """Follows partitions of one topic with a single consumer (see :meth:`KafkaLog.tail`)."""

    def __init__(self, consumer: Any, topic: str, starts: Mapping[int, int]) -> None:
        self.consumer = consumer
        self.topic = topic
        self._tps = {p: TopicPartition(topic, p) for p in starts}
        self._starts = dict(starts)

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(list(self._tps.values()))
        for partition, offset in self._starts.items():
            self.consumer.seek(self._tps[partition], offset)

    async def close(self) -> None:
        await stop_quietly(self.consumer)

    async def next(self, timeout_ms: int, max_records: int) -> dict[int, list[Record]]:
        """The records that arrived (waiting up to ``timeout_ms`` for some), by partition."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return {tp.partition: [to_record(m) for m in messages]
                for tp, messages in batches.items() if messages}

    async def positions(self) -> dict[int, int]:
        """The next offset to read per partition: past transaction markers and aborted
        records too, which :meth:`next` never returns but which take offsets."""
        return {p: int(await self.consumer.position(tp)) for p, tp in self._tps.items()}


class GroupClient:
    """A consumer that only commits and reads a group's offsets. It never joins the
    group: a manual assignment commits as a "simple" consumer (generation -1)."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self._assigned: set[TopicPartition] = set()
        self.lock = asyncio.Lock()

    async def commit(self, offsets: Offsets) -> None:
        tps = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
        async with self.lock:
            if not tps.keys() <= self._assigned:
                self._assigned |= tps.keys()
                self.consumer.assign(list(self._assigned))
                # assigned only so that commit() accepts them: never fetch
                self.consumer.pause(*self._assigned)
            await self.consumer.commit(tps)

    async def committed(self, topic: str, partition: int) -> int | None:
        offset = await self.consumer.committed(TopicPartition(topic, partition))
        return None if offset is None else int(offset)


def to_record(message: Any) -> Record:
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        # a null value (a tombstone from another client) reads as empty bytes
        value=message.value if message.value is not None else b"",
        headers=tuple((k, v if v is not None else b"") for k, v in message.headers or ()),
        timestamp_ms=message.timestamp,
    )
