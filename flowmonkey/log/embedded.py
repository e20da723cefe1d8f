"""The embedded log: FlowMonkey's default backend, in memory (``path=None``) or on disk.

One process owns a data directory: ``start()`` takes an exclusive ``flock`` on
``<path>/LOCK``, and a second owner (another process, or another ``EmbeddedLog`` in
this one) is refused with a :class:`~flowmonkey.errors.LogError`. The files and
their recovery are described in :mod:`flowmonkey.log._embedded_store` and
:mod:`flowmonkey.log._embedded_recovery`.

An append may touch several partitions (several files) and carry a group's offsets,
so no single file write can make it atomic; a journal entry is the commit point. A
durable append runs in this order:

1. Route and validate every record and offset. Nothing has changed if this raises.
2. Assign offsets and write the record frames to their segments (page cache).
3. Group commit, once per round for all appends queued meanwhile: fsync every
   segment written, *then* write one journal entry per append (naming each touched
   partition's new end offset and the group's offsets) and fsync the journal, or
   write them into a checkpoint that is synced. This is the write-ahead rule: a
   journal entry on disk implies its records are on disk, so recovery can take every
   valid entry as proof that its records are committed, even after a power loss.
   A failure here leaves the log refusing writes until it is reopened, with the
   outcome indeterminate, as with a Kafka timeout: reopening finds the append either
   whole or absent (frames without a complete entry are moved aside).
4. Publish: records and offsets become visible together and waiters wake.

With ``fsync=False`` the entry is written right after the frames, in the same call,
and nothing is synced: a killed *process* loses nothing it was told was appended (the
page cache survives it), but after a power loss or an OS crash the kernel may have
written a journal entry without its records, or neither; the start may then refuse
with ``LOG_DAMAGED`` and ``log repair`` may leave placeholders. There is no power-loss
guarantee without fsync.

In memory, steps 2-4 are one synchronous step, and every record is kept in memory:
it is the store. A durable log keeps in memory only where each record is on disk and
the bytes of the newest ones (:mod:`flowmonkey.log._disk_columns`); older records are
read back from their segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from flowmonkey.errors import LogError
from flowmonkey.log._disk_columns import DiskColumns
from flowmonkey.log._embedded_recovery import recover
from flowmonkey.log._embedded_store import (
    APPEND,
    DEFAULT_SEGMENT_BYTES,
    JOURNAL_COMPACT_BYTES,
    DiskStore,
    Offsets,
    PartitionState,
    PendingAppend,
    TopicState,
    encode_entry,
    sync_all,
    valid_topic_name,
)
from flowmonkey.log.base import (
    DEFAULT_TOPIC_PREFIX,
    LogCapabilities,
    OutRecord,
    Position,
    Record,
    TopicSpec,
)
from flowmonkey.log.decoded import new_position
from flowmonkey.log.partitioner import partition_for

logger = logging.getLogger(__name__)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class EmbeddedLog:
    """The :class:`~flowmonkey.log.base.Log` for one process: in memory, or durable
    under ``path`` (the module docstrings describe the commit sequence and the files).

    ``partitions`` is the partition count the engine gives the topics it creates
    (:attr:`default_partitions`); a :class:`TopicSpec` always says its own count.
    ``fsync=False`` keeps the commit protocol (a crashed *process* loses nothing it
    was told was appended) but not power-loss durability: after a power loss the
    start may refuse and repair may leave placeholders (module docstring).
    ``now_ms`` stamps records. Compacted topics are recorded as such but not
    compacted yet. ``topic_prefix`` names the topics an engine or a projector service
    builds on this log (``<prefix>.commands`` …), as on
    :class:`~flowmonkey.log.kafka.KafkaLog`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        partitions: int = 4,
        fsync: bool = True,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        now_ms: Callable[[], int] | None = None,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
    ) -> None:
        if partitions < 1:
            raise LogError(f"partitions must be at least 1, got {partitions}")
        if segment_bytes < 1:
            raise LogError(f"segment_bytes must be at least 1, got {segment_bytes}")
        self._path = None if path is None else Path(path)
        self.topic_prefix = topic_prefix
        self._default_partitions = partitions
        self._fsync = fsync
        self._segment_bytes = segment_bytes
        self._now_ms = now_ms or _wall_clock_ms
        self._topics: dict[str, TopicState] = {}
        self._groups: dict[str, Offsets] = {}
        self._dirty_groups: set[str] = set()
        self._store: DiskStore | None = None
        self._started = self._closing = self._closed = False
        self._failure: BaseException | None = None
        self._seq = 0  # last journal seq assigned
        self._visible_seq = 0  # last journal seq published
        self._pending: list[PendingAppend] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def default_partitions(self) -> int:
        return self._default_partitions

    @property
    def capabilities(self) -> LogCapabilities:
        """One process owns it: every partition read on its own, topics created here;
        appended records keep their decoded objects (:mod:`flowmonkey.log.decoded`)."""
        return LogCapabilities(default_partitions=self._default_partitions,
                               keeps_decoded=True)

    @property
    def partitions(self) -> int:
        """Alias of :attr:`default_partitions`."""
        return self._default_partitions

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self._closed or self._closing:
            raise LogError("this EmbeddedLog was closed; create a new one to reopen")
        if self._started:
            return
        if self._path is not None:
            store = DiskStore(self._path, self._fsync, self._segment_bytes)
            try:
                store.acquire_lock()
                recovered = recover(store)
                topics = recovered.topics.values()
                store.checkpoint(recovered.seq, topics, recovered.groups, recovered.groups.keys())
            except BaseException as exc:
                store.close()
                if isinstance(exc, OSError):
                    raise LogError(f"cannot open the embedded log at {self._path}: {exc}") from exc
                raise
            self._store = store
            self._topics, self._groups = recovered.topics, recovered.groups
            self._seq = self._visible_seq = recovered.seq
        self._started = True

    async def close(self) -> None:
        """Finish pending appends, checkpoint, release the data directory, and make
        current and later ``wait_for`` calls raise."""
        if self._closed or self._closing:
            return
        self._closing = True
        try:
            if self._flusher is not None:
                await self._flusher
            store = self._store
            if store is not None:
                try:
                    if self._failure is None:
                        self._checkpoint(store)
                finally:
                    store.close()
        except OSError as exc:
            raise LogError(f"closing the embedded log at {self._path} failed: {exc}") from exc
        finally:
            self._closed = True
            for topic in self._topics.values():
                for part in topic.parts:
                    part.records.close()
                    part.wake()

    async def create_topics(self, topics: Sequence[TopicSpec]) -> None:
        self._check_writable()
        for spec in topics:
            if not valid_topic_name(spec.name):
                raise LogError(
                    f"invalid topic name {spec.name!r}: use 1-249 characters of "
                    "[A-Za-z0-9._-], and none of '_offsets', '_journal.log', 'LOCK'",
                    topic=spec.name,
                )
            if spec.partitions < 1:
                raise LogError(f"topic {spec.name!r} needs at least 1 partition", topic=spec.name)
        for spec in topics:
            if spec.name in self._topics:
                continue
            topic = TopicState(spec)
            if self._store is not None:
                try:
                    self._store.create_topic(topic)
                except OSError as exc:
                    message = f"cannot create topic {spec.name!r}: {exc}"
                    raise LogError(message, topic=spec.name) from exc
                for part in topic.parts:
                    part.records = DiskColumns(
                        spec.name, part.index, self._store.partition_dir(spec.name, part.index))
            self._topics[spec.name] = topic

    async def partitions_for(self, topic: str) -> int:
        self._check_readable()
        return len(self._topic(topic).parts)

    async def publish(self, records: Sequence[OutRecord]) -> list[Position]:
        # an append is already as cheap as it gets here (and atomic, which publish
        # allows without asking for)
        return await self.append(records)

    async def append(
        self,
        records: Sequence[OutRecord],
        *,
        commit_group: str | None = None,
        commit_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> list[Position]:
        self._check_writable()
        routed = self._route(records)
        offsets = self._validated_offsets(commit_group, commit_offsets)
        if self._store is None:
            return self._append_in_memory(routed, commit_group, offsets)
        return await self._append_durable(routed, commit_group, offsets)

    async def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[Record]:
        self._check_readable()
        part = self._partition(topic, partition)
        if offset < 0 or max_records < 1:
            raise LogError(
                f"cannot read {topic}/{partition} from offset {offset} "
                f"with max_records={max_records}: both must be non-negative and max_records >= 1",
                topic=topic,
                partition=partition,
            )
        return part.records.read(offset, max_records)

    async def wait_for(self, topic: str, partition: int, offset: int, timeout_s: float) -> bool:
        self._check_readable()
        part = self._partition(topic, partition)
        if len(part.records) > offset:
            return True
        # A plain future and a timer handle per wait: asyncio.wait_for would add a task
        # per wake-up, and readers wait after nearly every batch.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(part.records) <= offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[bool] = loop.create_future()
            part.waiters.append(waiter)
            timer = loop.call_later(remaining, _expire, waiter)
            woken = False
            try:
                woken = await waiter
            finally:
                timer.cancel()
                if not woken:  # timed out or cancelled: wake() did not take it away
                    with contextlib.suppress(ValueError):
                        part.waiters.remove(waiter)
            if self._closed:
                raise LogError(f"the log closed while waiting on {topic}/{partition}")
            if not woken:
                return len(part.records) > offset
        return True

    async def end_offset(self, topic: str, partition: int) -> int:
        self._check_readable()
        return len(self._partition(topic, partition).records)

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        await self.append((), commit_group=group, commit_offsets=offsets)

    async def committed(self, group: str, topic: str, partition: int) -> int | None:
        self._check_readable()
        return self._groups.get(group, {}).get((topic, partition))

    # --- internals ----------------------------------------------------------------------

    def _check_readable(self) -> None:
        if not self._started:
            raise LogError("the EmbeddedLog is not started: call start() or use 'async with'")
        if self._closed:
            raise LogError("the EmbeddedLog is closed")

    def _check_writable(self) -> None:
        self._check_readable()
        if self._closing:
            raise LogError("the EmbeddedLog is closing")
        if self._failure is not None:
            raise LogError(
                f"the embedded log at {self._path} refuses writes after a failed write "
                f"({self._failure!r}); close it and open it again to recover"
            )

    def _topic(self, name: str) -> TopicState:
        topic = self._topics.get(name)
        if topic is None:
            message = f"unknown topic {name!r}: create it with create_topics() first"
            raise LogError(message, topic=name)
        return topic

    def _partition(self, topic: str, partition: int) -> PartitionState:
        parts = self._topic(topic).parts
        if not 0 <= partition < len(parts):
            raise LogError(
                f"partition {partition} does not exist: topic {topic!r} has {len(parts)}",
                topic=topic,
                partition=partition,
            )
        return parts[partition]

    def _route(self, records: Sequence[OutRecord]) -> list[tuple[PartitionState, OutRecord]]:
        routed = []
        topics = self._topics
        for record in records:
            topic = topics.get(record.topic) or self._topic(record.topic)
            index = record.partition
            if index is None:
                key = record.key
                count = len(topic.parts)
                index = topic.next_round_robin() if key is None else partition_for(key, count)
            elif not 0 <= index < len(topic.parts):
                self._partition(record.topic, index)  # raises
            routed.append((topic.parts[index], record))
        return routed

    def _validated_offsets(
        self, group: str | None, offsets: Mapping[tuple[str, int], int] | None
    ) -> Offsets:
        if not offsets:
            return {}
        if not group:
            raise LogError("commit_offsets need a non-empty commit_group")
        for (topic, partition), offset in offsets.items():
            self._partition(topic, partition)
            if offset < 0:
                raise LogError(
                    f"cannot commit offset {offset} for {topic}/{partition}: offsets are >= 0",
                    topic=topic,
                    partition=partition,
                )
        return dict(offsets)

    def _append_in_memory(
        self, routed: list[tuple[PartitionState, OutRecord]], group: str | None, offsets: Offsets
    ) -> list[Position]:
        # No await from here on: readers see all of this append or none of it.
        timestamp_ms = self._now_ms()
        positions = []
        for part, out in routed:
            offset = part.records.append(out.key, out.value, out.headers, timestamp_ms,
                                         getattr(out, "decoded", None))
            part.next_offset = offset + 1
            positions.append(new_position(out.topic, part.index, offset))
            if part.waiters:
                part.wake()
        if offsets:
            assert group is not None
            self._groups.setdefault(group, {}).update(offsets)
        return positions

    async def _append_durable(
        self, routed: list[tuple[PartitionState, OutRecord]], group: str | None, offsets: Offsets
    ) -> list[Position]:
        store = self._store
        assert store is not None
        if not routed and not offsets:
            return []
        timestamp_ms = self._now_ms()
        positions = []
        by_partition: dict[PartitionState, list[OutRecord]] = {}
        first: dict[PartitionState, int] = {}
        for part, out in routed:
            offset = part.next_offset
            part.next_offset = offset + 1
            run = by_partition.get(part)
            if run is None:
                run = by_partition[part] = []
                first[part] = offset
            run.append(out)
            positions.append(new_position(out.topic, part.index, offset))
        self._seq += 1
        ends = [(part.topic, part.index, part.next_offset) for part in by_partition]
        offset_items = [(topic, partition, o) for (topic, partition), o in offsets.items()]
        entry = encode_entry(APPEND, self._seq, ends, group if offsets else None, offset_items)
        batch = PendingAppend(self._seq, by_partition, first, timestamp_ms,
                              group if offsets else None, offsets, entry)
        try:
            store.write(batch)
        except OSError as exc:
            raise self._fail(exc) from exc
        if not self._fsync:
            self._publish(batch)
            store.close_retired()
            if store.journal_size > JOURNAL_COMPACT_BYTES:
                self._checkpoint(store)
            return positions
        batch.done = asyncio.get_running_loop().create_future()
        self._pending.append(batch)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_rounds(store))
        await batch.done
        return positions

    async def _flush_rounds(self, store: DiskStore) -> None:
        """Group commit: each round syncs every file written by the appends queued so
        far, then publishes them in order."""
        try:
            while self._pending:
                batches, self._pending = self._pending, []
                try:
                    # the write-ahead rule: the records' frames are on disk before any
                    # journal entry naming them is written (a checkpoint too)
                    entries = [batch.entry for batch in batches]
                    if store.journal_size > JOURNAL_COMPACT_BYTES:
                        await asyncio.to_thread(sync_all, store.take_dirty())
                        self._checkpoint(store, entries)  # syncs the new journal
                    else:  # in one thread hop; the loop never writes the journal meanwhile
                        await asyncio.to_thread(store.commit_round, store.take_dirty(),
                                                b"".join(entries))
                except BaseException as exc:
                    error = self._fail(exc)
                    for batch in [*batches, *self._pending]:
                        if batch.done is not None and not batch.done.done():
                            batch.done.set_exception(error)
                    self._pending = []
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    return
                for batch in batches:
                    self._publish(batch)
                    if batch.done is not None and not batch.done.done():
                        batch.done.set_result(None)
                store.close_retired()
        finally:
            self._flusher = None

    def _checkpoint(self, store: DiskStore, unsynced_entries: Sequence[bytes] = ()) -> None:
        store.checkpoint(
            self._visible_seq,
            self._topics.values(),
            self._groups,
            self._dirty_groups,
            unsynced_entries,
        )
        self._dirty_groups.clear()

    def _publish(self, batch: PendingAppend) -> None:
        """Step 4: make one append visible, records and offsets at once."""
        timestamp_ms = batch.timestamp_ms
        for part, records in batch.records.items():
            columns = part.records
            assert isinstance(columns, DiskColumns)
            columns.publish(records, timestamp_ms, batch.places[part])
            part.wake()
        if batch.group is not None:
            self._groups.setdefault(batch.group, {}).update(batch.offsets)
            self._dirty_groups.add(batch.group)
        self._visible_seq = batch.seq

    def _fail(self, exc: BaseException) -> LogError:
        self._failure = exc
        logger.error("embedded log at %s failed a write and refuses more: %r", self._path, exc)
        return LogError(f"writing to the embedded log at {self._path} failed: {exc!r}")
