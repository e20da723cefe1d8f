"""The Kafka log's writer: one producer, transactional or idempotent.

See :mod:`flowmonkey.log.kafka` for the guarantees (transactions, fencing by
transactional id, visibility). Split from it to keep each module small.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from aiokafka import TopicPartition
from aiokafka.errors import ProducerFenced

from flowmonkey.errors import LogError
from flowmonkey.log.base import OutRecord, Position

if TYPE_CHECKING:
    from flowmonkey.log.kafka import KafkaLog
    from flowmonkey.log.kafka_consumers import Offsets

logger = logging.getLogger("flowmonkey.log.kafka")

_FEW_RECORDS = 8  # appends up to this size join the producer's shared batches

class KafkaWriter:
    """Appends through one producer: transactional when it has a ``transactional_id``,
    idempotent (at least once) otherwise. Made by :class:`KafkaLog`; see
    :meth:`KafkaLog.transactional`."""

    def __init__(
        self, log: KafkaLog, transactional_id: str | None, *, wait_visible: bool = True
    ) -> None:
        self.transactional_id = transactional_id
        self._log = log
        self._wait_visible = wait_visible
        self._producer: Any = None
        self._lock = asyncio.Lock()  # one transaction at a time per producer
        self._broken: LogError | None = None
        # appends without offsets that arrive while a transaction runs share the next one
        self._pending: list[tuple[Sequence[tuple[OutRecord, int]], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._producer = self._log._producer(self.transactional_id)
        try:
            # for a transactional producer this is InitProducerId: the fencing moment
            with self._log._errors(f"starting a producer ({self._describe()})"):
                await self._producer.start()
        except BaseException:
            await stop_quietly(self._producer)
            self._producer = None
            raise

    async def close(self) -> None:
        self._log._writers.discard(self)
        if self._flusher is not None and not self._flusher.done():
            async with self._lock:  # the transaction in progress ends first
                self._flusher.cancel()
        pending, self._pending = self._pending, []
        for _, future in pending:
            if not future.done():
                future.set_exception(LogError(f"the writer ({self._describe()}) was closed "
                                              "before this append was sent"))
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_quietly(producer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def fenced(self) -> bool:
        """True once a newer writer with the same transactional id took over."""
        return self._broken is not None and self._broken.code == "LOG_FENCED"

    @property
    def usable(self) -> bool:
        """False once closed, fenced, or after a failed append; then open a new writer
        (for a transactional id, only while this instance still owns the partition)."""
        return self._producer is not None and self._broken is None

    async def append(
        self,
        records: Sequence[OutRecord],
        *,
        commit_group: str | None = None,
        commit_offsets: Offsets | None = None,
    ) -> list[Position]:
        """Append ``records`` and commit ``commit_offsets`` for ``commit_group``, as in
        :meth:`flowmonkey.log.base.Log.append`. Nothing is sent if validation fails."""
        offsets = dict(commit_offsets or {})
        routed = await self._log._route(records)
        await self._log._check_offsets(commit_group, offsets)
        if not routed and not offsets:
            return []
        if self._broken is not None:
            raise self._broken
        if self._producer is None:
            raise LogError(f"the writer ({self._describe()}) is closed")
        if self.transactional_id is None:
            return await self._append_at_least_once(routed, commit_group, offsets)
        if not offsets:
            return await self._grouped(routed)
        async with self._lock:
            positions = await self._transaction(routed, commit_group, offsets)
        if self._wait_visible:
            with self._log._errors("waiting for a committed transaction to become visible"):
                await self._log._await_visible(positions, commit_group, offsets)
        return positions

    async def _grouped(self, routed: Sequence[tuple[OutRecord, int]]) -> list[Position]:
        """Group commit: concurrent appends (many clients publishing commands through
        one log) share transactions instead of queueing for one each. Every append is
        still all or nothing, since its records are all in one transaction; when that
        transaction fails, every append in it fails with the same error."""
        future: asyncio.Future[list[Position]] = asyncio.get_running_loop().create_future()
        self._pending.append((routed, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            async with self._lock:
                batch, self._pending = self._pending, []
                merged = [item for routed, _ in batch for item in routed]
                try:
                    if self._broken is not None:
                        raise self._broken
                    positions = await self._transaction(merged, None, {})
                    if self._wait_visible:
                        with self._log._errors("waiting for a committed transaction to "
                                               "become visible"):
                            await self._log._await_visible(positions, None, {})
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
            start = 0
            for routed, future in batch:
                if not future.done():
                    future.set_result(positions[start:start + len(routed)])
                start += len(routed)

    async def _append_at_least_once(
        self, routed: Sequence[tuple[OutRecord, int]], group: str | None, offsets: Offsets
    ) -> list[Position]:
        # records first, offsets second: a crash in between replays inputs, never skips
        try:
            if len(routed) <= _FEW_RECORDS:
                positions = await self._send_each(routed)
            else:
                positions = await self._send_all(routed)
        except LogError as exc:
            raise self._fail(exc) from exc.__cause__
        if offsets and group is not None:
            try:
                await self._log.commit(group, offsets)
            except LogError as exc:
                raise LogError(
                    f"the records were appended but the offsets of group {group!r} were not "
                    f"committed (at least once: the inputs will be seen again): {exc.message}",
                    positions=positions,
                ) from exc
        return positions

    async def _transaction(
        self,
        routed: Sequence[tuple[OutRecord, int]],
        group: str | None,
        offsets: Offsets,
    ) -> list[Position]:
        # The order is the point:
        # 1. begin: local only; a fenced or failed producer refuses here.
        # 2. offsets first (aiokafka #1004: adding them after the sends can fail
        #    delivery of the batch); they stay pending until the commit.
        # 3. send every record, then await all deliveries (batched, never one
        #    round trip per record).
        # 4. commit: records and offsets become visible together.
        # Any failure in 1-4 aborts, so nothing of the append becomes visible; a fenced
        # producer cannot even abort, and its successor's init aborted it already.
        producer = self._producer
        try:
            with self._log._errors(f"appending in a transaction ({self._describe()})"):
                await producer.begin_transaction()
                if offsets and group is not None:
                    await producer.send_offsets_to_transaction(
                        {TopicPartition(t, p): o for (t, p), o in offsets.items()}, group
                    )
                positions = await self._send_all(routed)
                await producer.commit_transaction()
            return positions
        except BaseException as exc:
            await asyncio.shield(self._abort())
            if isinstance(exc, LogError):
                raise self._fail(exc) from exc.__cause__
            self._fail(LogError(f"the append was interrupted: {exc!r}"))
            raise

    async def _abort(self) -> None:
        try:
            await self._producer.abort_transaction()
        except BaseException as exc:  # already failing: the first error is the one to raise
            logger.debug("abort of a failed transaction failed too: %r", exc)
            _retrieve_fatal_error(self._producer)

    def _fail(self, exc: LogError) -> LogError:
        """Retire the writer after a failed append; returns the error to raise.

        aiokafka keeps counting a partition's idempotence sequence past a batch the
        broker refused and never resets it (no epoch bump), so the producer's next
        batch would fail with OutOfOrderSequenceNumber: after any failure the writer
        is done, and a new one (same transactional id) must take its place.
        """
        if isinstance(exc.__cause__, ProducerFenced):
            self._broken = LogError(
                f"the writer for transactional id {self.transactional_id!r} was fenced: "
                "another instance started a writer with the same id and owns its "
                "partition now. Drop the partition's state and stop processing it.",
                code="LOG_FENCED",
                transactional_id=self.transactional_id,
            )
            self._broken.__cause__ = exc.__cause__
            return self._broken
        if self._broken is None:
            self._broken = LogError(
                f"the writer ({self._describe()}) failed an append and must be replaced: "
                f"{exc.message}",
                code="LOG_WRITER_FAILED",
                transactional_id=self.transactional_id,
            )
        return exc

    async def _send_each(self, routed: Sequence[tuple[OutRecord, int]]) -> list[Position]:
        """Send a few records one by one: they join the producer's open batch for their
        partition, shared with concurrent appends. (A batch of one's own per append would
        queue behind the partition's single in-flight batch of an idempotent producer,
        one round trip each: many concurrent publishers timed out that way.)"""
        producer = self._producer
        with self._log._errors(f"appending ({self._describe()})"):
            futures = [await producer.send(record.topic, record.value, key=record.key,
                                           partition=partition, headers=list(record.headers))
                       for record, partition in routed]
            results = await asyncio.gather(*futures, return_exceptions=True)
        positions: list[Position] = []
        for result, (record, partition) in zip(results, routed, strict=True):
            if isinstance(result, BaseException):
                raise LogError(f"Kafka refused a record for {record.topic}[{partition}] "
                               f"({self._describe()}): {result!r}") from result
            positions.append(Position(result.topic, int(result.partition), int(result.offset)))
        return positions

    async def _send_all(self, routed: Sequence[tuple[OutRecord, int]]) -> list[Position]:
        """Send every record, then wait for all deliveries.

        Records are packed into one producer batch per partition (a new one when a
        batch is full) instead of one ``send()`` each: a batch costs one future and one
        accumulator entry, so a 500-record append costs far less client CPU. A batch
        is delivered whole at a base offset; its i-th record sits at base + i.
        """
        producer = self._producer
        open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        sent: list[tuple[asyncio.Future[Any], list[int]]] = []

        async def submit(topic: str, partition: int) -> None:
            builder, indexes = open_batches.pop((topic, partition))
            sent.append((await producer.send_batch(builder, topic, partition=partition), indexes))

        with self._log._errors(f"appending ({self._describe()})"):
            try:
                for index, (record, partition) in enumerate(routed):
                    builder, indexes = open_batches.setdefault(
                        (record.topic, partition), (producer.create_batch(), [])
                    )
                    if not _append_to(builder, record):  # full: send it, start another
                        await submit(record.topic, partition)
                        builder, indexes = open_batches.setdefault(
                            (record.topic, partition), (producer.create_batch(), [])
                        )
                        if not _append_to(builder, record):
                            raise LogError("an empty producer batch refused a record")
                    indexes.append(index)
                for topic, partition in list(open_batches):
                    await submit(topic, partition)
            finally:
                results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
            positions: list[Position] = [_UNSET] * len(routed)
            for result, (_, indexes) in zip(results, sent, strict=True):
                if isinstance(result, ProducerFenced):
                    raise result
                if isinstance(result, BaseException):
                    tp = routed[indexes[0]]
                    raise LogError(
                        f"Kafka refused records for {tp[0].topic}[{tp[1]}] "
                        f"({self._describe()}): {result!r}"
                    ) from result
                for i, index in enumerate(indexes):
                    positions[index] = Position(
                        result.topic, int(result.partition), int(result.offset) + i
                    )
        return positions

    def _describe(self) -> str:
        if self.transactional_id is None:
            return "idempotent producer"
        return f"transactional id {self.transactional_id!r}"


_UNSET = Position("", -1, -1)


def _append_to(builder: Any, record: OutRecord) -> bool:
    appended = builder.append(
        timestamp=None, key=record.key, value=record.value, headers=list(record.headers)
    )
    return appended is not None


def _retrieve_fatal_error(producer: Any) -> None:
    """A producer in a fatal state (fenced) keeps the error in its transaction waiter,
    which nothing awaits any more; retrieve it so asyncio does not log it as lost."""
    manager = getattr(producer, "_txn_manager", None)
    waiter = manager.wait_for_transaction_end() if manager is not None else None
    if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
        waiter.exception()


async def stop_quietly(client: Any) -> None:
    stop = getattr(client, "stop", None) or client.close
    try:
        await stop()
    except Exception as exc:  # closing: nothing useful to do with it
        logger.debug("closing %r failed: %r", client, exc)
