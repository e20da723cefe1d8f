"""The Kafka log: the :class:`~flowmonkey.log.base.Log` interface on a Kafka cluster (aiokafka).

Writers. Every append goes through a :class:`KafkaWriter`, which owns one producer:

* exactly once (the default): a *transactional* producer. One append is one Kafka
  transaction holding its records and, optionally, a consumer group's offsets, so
  the processor's events and the offsets of the commands that caused them become
  visible together or not at all.
* at least once (``exactly_once=False``, for brokers without transactions): an
  idempotent producer (``acks=all``); the offsets are committed after the records,
  so a crash in between replays the commands, which deduplication absorbs (DESIGN §4).

Fencing. aiokafka 0.14 speaks the v0 transaction protocol: its
``send_offsets_to_transaction`` carries no group generation (no KIP-447), so the
broker cannot tell a processor that lost a partition in a rebalance from the one
that now owns it. The only fence is the ``transactional_id``: starting a producer
with an id bumps that id's epoch and the broker then refuses the older producer
(``ProducerFenced``). So the processor opens one writer per owned input partition,
``await log.transactional(f"{app}.{topic}.{partition}")``, and a zombie that still
believes it owns the partition fails its next append with a :class:`LogError`
(``code="LOG_FENCED"``) instead of committing duplicate events.

Offsets are not dense on Kafka. A transaction's commit (or abort) marker takes an
offset in every partition the transaction wrote, and aborted records keep theirs,
so consecutive committed records can be more than one offset apart. Offsets still
grow in append order, ``read`` skips markers and aborted records, and
``end_offset`` (the last stable offset) is the offset the next record gets.

Visibility. When ``commit_transaction`` returns, the broker has decided the commit
but writes the markers asynchronously, so an immediate ``read``/``committed`` may
not see it yet (on a local broker it usually does not). Appends therefore
wait until their records and offsets are readable before returning, as on the
embedded log; a writer made with ``wait_visible=False`` skips that round trip.

Connections. Every client the log builds (admin, readers, group members, producers)
is made from the same connection settings: ``security`` (a
:class:`~flowmonkey.log.kafka_security.KafkaSecurity`: TLS, SASL) turned into aiokafka
arguments once per log. New topics get ``replication_factor`` replicas; the default,
-1, lets the broker choose (its ``default.replication.factor``), which CreateTopics
accepts since Kafka 2.4 (KIP-464) and Kafka 4 accepts in the v3 request aiokafka
sends (checked against the test broker).

Topics. Nothing here lets the broker auto-create a topic: every look at a topic is a
metadata request with auto-creation off (:mod:`flowmonkey.log.kafka_topics`), since a
broker with ``auto.create.topics.enable=true`` (Kafka's default) would otherwise make it
with its defaults (one partition, 7-day retention). :meth:`KafkaLog.create_topics` reads
the topics it made back and raises if the cluster has other partitions or settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from flowmonkey.errors import LogError
from flowmonkey.log.base import (
    DEFAULT_TOPIC_PREFIX,
    Headers,
    Log,
    LogCapabilities,
    OutRecord,
    Position,
    Record,
    TopicSpec,
)
from flowmonkey.log.kafka_consumers import READ_POLL_MS as _READ_POLL_MS
from flowmonkey.log.kafka_consumers import REQUEST_TIMEOUT_MS as _REQUEST_TIMEOUT_MS
from flowmonkey.log.kafka_consumers import (
    GroupClient,
    KafkaTail,
    Offsets,
    PartitionReader,
)
from flowmonkey.log.kafka_security import (
    BootstrapFailed,
    KafkaSecurity,
    connection_hint,
    connection_problem,
)
from flowmonkey.log.kafka_topics import (
    TopicFacts,
    alter_topic_configs,
    describe_topic_facts,
    topic_metadata,
)
from flowmonkey.log.kafka_writer import KafkaWriter, stop_quietly
from flowmonkey.log.partitioner import partition_for

logger = logging.getLogger(__name__)


_TOPIC_ALREADY_EXISTS = 36
_INVALID_REPLICATION_FACTOR = 38
#: ``replication_factor`` meaning "the broker's ``default.replication.factor``"
BROKER_DEFAULT_REPLICATION = -1
_MAX_REPLICATION_FACTOR = 32767  # an int16 in the protocol
_DIAGNOSE_TIMEOUT_MS = 10_000
_MAX_BATCH_BYTES = 512 * 1024
_MAX_REQUEST_BYTES = 1024 * 1024  # the broker's default message.max.bytes is ~this
_RECORD_OVERHEAD_BYTES = 128  # batch header and record framing, generously
_RETRY_BACKOFF_MS = 3
_MAX_READERS = 64
_MAX_GROUPS = 16


class KafkaLog:
    """The log on a Kafka cluster; see the module docstring for the guarantees."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = DEFAULT_TOPIC_PREFIX,
        partitions: int = 12,
        replication_factor: int = BROKER_DEFAULT_REPLICATION,
        exactly_once: bool = True,
        client_id: str = "flowmonkey",
        transactional_id: str | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        """``transactional_id`` names this log's own writer; without it an exactly-once
        log makes up a unique one (atomic appends, but nothing to fence). Writers that
        must fence a predecessor come from :meth:`transactional`.

        ``topic_prefix`` names the topics an engine or a projector service builds on
        this log (``<prefix>.commands`` …): the one place a deployment's prefix is set.
        ``partitions`` is the default count for the topic specs they build. The log
        itself uses only the names it is given.

        ``replication_factor``: replicas of the topics :meth:`create_topics` makes; -1
        (the default) takes the broker's ``default.replication.factor``. ``security``:
        TLS and SASL for every connection (default: PLAINTEXT).
        """
        if isinstance(replication_factor, bool) or not isinstance(replication_factor, int) \
                or not (replication_factor == BROKER_DEFAULT_REPLICATION
                        or 1 <= replication_factor <= _MAX_REPLICATION_FACTOR):
            raise ValueError(f"replication_factor must be -1 (the broker's default) or a "
                             f"whole number from 1 to {_MAX_REPLICATION_FACTOR}, "
                             f"not {replication_factor!r}")
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.exactly_once = exactly_once
        self.client_id = client_id
        self.transactional_id = transactional_id
        self.security = security or KafkaSecurity()
        self._connection: dict[str, Any] | None = None  # see _connection_kwargs
        self._admin: Any = None
        self._offsets_reader: Any = None  # read_committed consumer for end offsets
        self._writer: KafkaWriter | None = None
        self._publisher: KafkaWriter | None = None  # idempotent, for publish()
        self._writers: set[KafkaWriter] = set()
        self._writer_lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()
        self._partition_counts: dict[str, int] = {}
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._readers: OrderedDict[tuple[str, int], PartitionReader] = OrderedDict()
        self._groups: OrderedDict[str, GroupClient] = OrderedDict()
        self._started = False

    @property
    def default_partitions(self) -> int:
        """Partitions for topics created from specs that callers build (the Engine)."""
        return self.partitions

    @property
    def capabilities(self) -> LogCapabilities:
        """Consumer groups with transactional writers, a tail consumer, and topics
        shared with the cluster's other processes."""
        return LogCapabilities(default_partitions=self.partitions, consumer_groups=True,
                               tail=True, shared_topics=True)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        try:
            with self._errors("connecting"):
                self._admin = AIOKafkaAdminClient(
                    client_id=f"{self.client_id}-admin",
                    request_timeout_ms=_REQUEST_TIMEOUT_MS,
                    **self._connection_kwargs(),
                )
                try:
                    await self._admin.start()
                except KafkaConnectionError as exc:
                    # aiokafka only says "Unable to bootstrap" (the cause goes to its
                    # log): look again, to tell refused credentials from a broker down
                    causes = await connection_problem(
                        self._connection_kwargs(), f"{self.client_id}-admin",
                        _DIAGNOSE_TIMEOUT_MS)
                    if causes is None:
                        raise
                    raise BootstrapFailed(causes) from exc
                self._offsets_reader = self._consumer(group_id=None)
                await self._offsets_reader.start()
            own_id = self.transactional_id or f"{self.client_id}-{uuid.uuid4().hex}"
            self._writer = await self._new_writer(own_id if self.exactly_once else None, True)
        except BaseException:
            await self.close()
            raise
        self._started = True

    async def close(self) -> None:
        self._started = False
        for writer in list(self._writers):
            await writer.close()
        self._writer = self._publisher = None
        clients: list[Any] = [r.consumer for r in self._readers.values()]
        clients += [g.consumer for g in self._groups.values()]
        clients += [self._offsets_reader, self._admin]
        self._readers.clear()
        self._groups.clear()
        self._offsets_reader = self._admin = None
        for client in clients:
            if client is not None:
                await stop_quietly(client)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- topics -------------------------------------------------------------------------

    async def create_topics(self, topics: Sequence[TopicSpec]) -> None:
        admin = self._require_started()
        new = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=self.replication_factor,
                # aiokafka's NewTopic takes -1 only alongside an assignment; an empty
                # one is sent as "no assignment", so the broker picks the replicas
                replica_assignments=(
                    {} if self.replication_factor == BROKER_DEFAULT_REPLICATION else None),
                topic_configs={
                    **({"cleanup.policy": "compact"} if spec.compacted else {}),
                    **spec.config,
                },
            )
            for spec in topics
        ]
        if not new:
            return
        with self._errors("creating topics"):
            response = await admin.create_topics(new)
        problems = [
            f"{topic}: {rest[0] if rest and rest[0] else f'error code {code}'}"
            for topic, code, *rest in response.topic_errors
            if code not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if problems:
            hint = ""
            if any(code == _INVALID_REPLICATION_FACTOR for _, code, *_ in response.topic_errors):
                hint = (" (the broker's default.replication.factor, asked for with replication "
                        "factor -1, is more than its brokers: give one explicitly)"
                        if self.replication_factor == BROKER_DEFAULT_REPLICATION else
                        f" (replication factor {self.replication_factor}: use at most the "
                        "number of brokers, or -1 for the broker's default.replication.factor)")
            raise LogError(f"could not create topics: {'; '.join(problems)}{hint}",
                           code="LOG_REPLICATION_FACTOR" if hint else None,
                           topics=[t for t, code, *_ in response.topic_errors
                                   if code not in (0, _TOPIC_ALREADY_EXISTS)])
        await self._wait_for_leaders([spec.name for spec in topics])
        created = {topic for topic, code, *_ in response.topic_errors if code == 0}
        await self._verify_created([spec for spec in topics if spec.name in created])

    async def _verify_created(self, specs: Sequence[TopicSpec]) -> None:
        """Read back the topics this log just created: the partitions and settings the
        cluster has, not the ones asked for, are what count (a topic auto-created by
        someone else's metadata request in the meantime would differ)."""
        facts = await self.describe_topics([spec.name for spec in specs])
        for spec in specs:
            made = facts[spec.name]
            wanted = {**({"cleanup.policy": "compact"} if spec.compacted else {}),
                      **spec.config}
            wrong = {} if made is None else {
                name: made.config(name) for name, value in wanted.items()
                if made.config(name) != value}
            if made is None or made.partitions != spec.partitions or wrong:
                have = "is missing" if made is None else (
                    f"has {made.partitions} partitions" + (f" and {wrong}" if wrong else ""))
                raise LogError(
                    f"topic {spec.name!r} was created with {spec.partitions} partitions and "
                    f"settings {wanted} but, read back, {have}", topic=spec.name,
                    code="LOG_TOPIC_SETTINGS")

    async def describe_topics(self, topics: Sequence[str]) -> dict[str, TopicFacts | None]:
        """Each topic's partitions and settings as the cluster has them, or None for a
        missing topic. Never creates a topic (see :mod:`flowmonkey.log.kafka_topics`)."""
        admin = self._require_started()
        with self._errors(f"reading the settings of topics {list(topics)}"):
            facts = await describe_topic_facts(admin, topics)
        for name, fact in facts.items():
            if fact is not None:
                self._partition_counts[name] = fact.partitions
        return facts

    async def alter_topic_configs(self, facts: TopicFacts, changes: Mapping[str, str]) -> None:
        """Set ``changes`` on an existing topic, keeping its other settings."""
        admin = self._require_started()
        with self._errors(f"changing the settings of topic {facts.name!r}"):
            await alter_topic_configs(admin, facts, changes)

    async def partitions_for(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            count = await self._fetch_partition_count(topic)
        return count

    # --- writing ------------------------------------------------------------------------

    async def append(
        self,
        records: Sequence[OutRecord],
        *,
        commit_group: str | None = None,
        commit_offsets: Offsets | None = None,
    ) -> list[Position]:
        writer = self._writer
        if writer is None:
            raise LogError("the Kafka log is not started: call start() first")
        if not writer.usable and not writer.fenced:
            async with self._writer_lock:
                if self._writer is writer:
                    # the log's own writer failed an append: replacing it fences only
                    # its retired self (a fenced one stays: another process has its id)
                    await writer.close()
                    writer = self._writer = await self._new_writer(writer.transactional_id, True)
                elif self._writer is not None:
                    writer = self._writer
        return await writer.append(
            records, commit_group=commit_group, commit_offsets=commit_offsets
        )

    async def publish(self, records: Sequence[OutRecord]) -> list[Position]:
        """Append records that need no atomicity with each other or with offsets (a
        client's commands: each is one record): through an idempotent producer, one
        acknowledged produce request instead of a transaction's five round trips and
        the wait for its markers. Read_committed readers see them once acknowledged
        (unless an earlier transaction on the partition is still open). Retried sends
        are deduplicated by the broker; a failed publish may be retried by the caller,
        which the processor's command-id deduplication absorbs."""
        self._require_started()
        publisher = self._publisher
        if publisher is None or not publisher.usable:
            async with self._writer_lock:
                if self._publisher is None or not self._publisher.usable:
                    if self._publisher is not None:
                        await self._publisher.close()
                    self._publisher = await self._new_writer(None, False)
                publisher = self._publisher
        return await publisher.append(records)

    async def transactional(
        self, transactional_id: str, *, wait_visible: bool = True
    ) -> KafkaWriter:
        """A started writer bound to ``transactional_id``; starting it fences every
        older writer with the same id (see the module docstring). The processor opens
        one per owned input partition and closes it when the partition is revoked.

        On an at-least-once log (``exactly_once=False``) the writer is idempotent and
        the id is not used: there is no fencing, deduplication keeps things correct.
        """
        self._require_started()
        return await self._new_writer(transactional_id if self.exactly_once else None, wait_visible)

    async def _new_writer(self, transactional_id: str | None, wait_visible: bool) -> KafkaWriter:
        writer = KafkaWriter(self, transactional_id, wait_visible=wait_visible)
        await writer.start()
        self._writers.add(writer)
        return writer

    def group_consumer(self, group_id: str, *, max_poll_records: int = 1000,
                       client_suffix: str = "member") -> AIOKafkaConsumer:
        """An unstarted consumer that will join ``group_id``: read_committed, no
        auto-commit, earliest offset for a group with none. Callers ``subscribe`` it with
        a rebalance listener and own its lifecycle (the processor and projector services
        do). Offsets are committed by the caller: in a transaction with the outputs
        (processor) or in the projection's own database (projector)."""
        consumer: AIOKafkaConsumer = self._consumer(
            group_id, client_suffix=client_suffix, max_poll_records=max_poll_records,
            retry_backoff_ms=_RETRY_BACKOFF_MS)
        return consumer

    async def tail(self, topic: str, starts: Mapping[int, int]) -> KafkaTail:
        """A started streaming reader of ``topic``'s partitions from ``starts``
        (partition -> offset): one read_committed consumer, long-polling, for readers
        that follow the whole topic (the engine's projector) instead of polling each
        partition with :meth:`read`. Close it when done."""
        await self._check_partition(topic, max(starts, default=0))
        tail = KafkaTail(self._consumer(group_id=None), topic, starts)
        with self._errors(f"opening a reader of {topic}"):
            await tail.start()
        return tail

    # --- reading ------------------------------------------------------------------------

    async def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[Record]:
        await self._check_partition(topic, partition)
        reader = await self._reader(topic, partition)
        with self._errors(f"reading {topic}[{partition}] from offset {offset}"):
            return await reader.read(offset, max_records)

    async def wait_for(self, topic: str, partition: int, offset: int, timeout_s: float) -> bool:
        # Polls rather than holding a fetch open: a waiter is rare (read-your-writes),
        # and the stable offset alone is not enough since markers take offsets too.
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            if await self.end_offset(topic, partition) > offset and await self.read(
                topic, partition, offset, max_records=1
            ):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)

    async def end_offset(self, topic: str, partition: int) -> int:
        await self._check_partition(topic, partition)
        tp = TopicPartition(topic, partition)
        with self._errors(f"reading the end offset of {topic}[{partition}]"):
            return (await self._end_offsets([tp]))[tp]

    async def _end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        self._require_started()
        ends = await self._offsets_reader.end_offsets(list(tps))
        return {tp: int(ends[tp]) for tp in tps}

    # --- consumer-group offsets ---------------------------------------------------------

    async def commit(self, group: str, offsets: Offsets) -> None:
        await self._check_offsets(group, offsets)
        if not offsets:
            return
        client = await self._group(group)
        with self._errors(f"committing offsets of group {group!r}"):
            await client.commit(offsets)

    async def committed(self, group: str, topic: str, partition: int) -> int | None:
        await self._check_partition(topic, partition)
        client = await self._group(group)
        with self._errors(f"reading the committed offset of group {group!r}"):
            return await client.committed(topic, partition)

    # --- helpers for writers ------------------------------------------------------------

    async def _route(self, records: Sequence[OutRecord]) -> list[tuple[OutRecord, int]]:
        """Each record with its partition; raises before anything is sent.

        The partition is always computed here (murmur2, like Kafka's default
        partitioner and the embedded log) so routing never depends on client defaults.
        """
        routed: list[tuple[OutRecord, int]] = []
        known = self._partition_counts
        for record in records:
            _check_size(record)
            # the cached count, without a coroutine per record (the processor routes
            # several records per step); a miss or a partition past it looks again
            count = known.get(record.topic)
            if count is None:
                count = await self.partitions_for(record.topic)
            if record.partition is not None:
                if not 0 <= record.partition < count:
                    await self._check_partition(record.topic, record.partition)
                partition = record.partition
            elif record.key is not None:
                partition = partition_for(record.key, count)
            else:
                counter = self._round_robin.setdefault(record.topic, itertools.count())
                partition = next(counter) % count
            routed.append((record, partition))
        return routed

    async def _check_offsets(self, group: str | None, offsets: Offsets) -> None:
        if offsets and not group:
            raise LogError("offsets to commit need a consumer group (commit_group)")
        for (topic, partition), offset in offsets.items():
            await self._check_partition(topic, partition)
            if offset < 0:
                raise LogError(f"offset {offset} for {topic}[{partition}] is negative")

    async def _await_visible(
        self, positions: Sequence[Position], group: str | None, offsets: Offsets
    ) -> None:
        """Wait until a committed transaction's records and offsets are readable."""
        needed: dict[TopicPartition, int] = {}
        for p in positions:
            tp = TopicPartition(p.topic, p.partition)
            needed[tp] = max(needed.get(tp, 0), p.offset + 1)
        deadline = time.monotonic() + _REQUEST_TIMEOUT_MS / 1000
        delay = 0.002
        while needed or offsets:
            if needed:
                ends = await self._end_offsets(list(needed))
                needed = {tp: end for tp, end in needed.items() if ends[tp] < end}
            if offsets and not needed and group is not None:
                client = await self._group(group)
                committed = {tp: await client.committed(*tp) for tp in offsets}
                offsets = {tp: o for tp, o in offsets.items() if committed[tp] != o}
            if not needed and not offsets:
                return
            if time.monotonic() > deadline:
                # committed all the same: raising would invite a duplicating retry
                logger.warning(
                    "a committed transaction was not visible after %.0fs: %s",
                    _REQUEST_TIMEOUT_MS / 1000,
                    sorted(needed) or sorted(offsets),
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    # --- internals ----------------------------------------------------------------------

    def _require_started(self) -> Any:
        if self._admin is None:
            raise LogError("the Kafka log is not started: call start() first")
        return self._admin

    def _consumer(self, group_id: str | None, *, client_suffix: str = "reader",
                  **options: Any) -> Any:
        """A read_committed consumer that never commits by itself (every reader and
        group member of this log is one); ``options`` add aiokafka settings."""
        return AIOKafkaConsumer(
            client_id=f"{self.client_id}-{client_suffix}",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=_READ_POLL_MS,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
            **self._connection_kwargs(),
            **options,
        )

    def _producer(self, transactional_id: str | None) -> Any:
        return AIOKafkaProducer(
            client_id=f"{self.client_id}-writer",
            transactional_id=transactional_id,
            enable_idempotence=True,
            acks="all",
            max_batch_size=_MAX_BATCH_BYTES,
            max_request_size=_MAX_REQUEST_BYTES,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
            # a transaction begun right after the previous commit is refused with
            # CONCURRENT_TRANSACTIONS until the broker has written the markers; the
            # default 100 ms backoff would cap a writer near 10 transactions/s, and 10 ms
            # is still about half of a transaction's time: retry after a few ms
            # (docs/performance.md)
            retry_backoff_ms=_RETRY_BACKOFF_MS,
            **self._connection_kwargs(),
        )

    def _connection_kwargs(self) -> dict[str, Any]:
        """The bootstrap servers and security settings every client of this log shares;
        built once (the TLS context reads its files), on first use."""
        if self._connection is None:
            try:
                security = self.security.client_kwargs()
            except ValueError as exc:
                raise LogError(str(exc), code="LOG_SECURITY_INVALID") from None
            self._connection = {"bootstrap_servers": self.bootstrap_servers, **security}
        return self._connection

    async def _fetch_partition_count(self, topic: str) -> int:
        admin = self._require_started()
        with self._errors(f"reading the metadata of topic {topic!r}"):
            # never admin.describe_topics: it asks the broker to create a missing topic
            [meta] = await topic_metadata(admin, [topic])
        if meta["error_code"] != 0 or not meta["partitions"]:
            raise LogError(
                f"topic {topic!r} is missing on the Kafka cluster at {self.bootstrap_servers}: "
                "create it first (create_topics, or `flowmonkey topics create`)",
                topic=topic,
            )
        count = len(meta["partitions"])
        self._partition_counts[topic] = count
        return count

    async def _check_partition(self, topic: str, partition: int) -> None:
        count = await self.partitions_for(topic)
        if not 0 <= partition < count:
            # partitions can be added to a topic: look again before refusing
            count = await self._fetch_partition_count(topic)
        if not 0 <= partition < count:
            raise LogError(
                f"topic {topic!r} has partitions 0..{count - 1}, not {partition}",
                topic=topic,
                partition=partition,
            )

    async def _wait_for_leaders(self, topics: Sequence[str]) -> None:
        """New topics are usable once every partition has a leader; wait for that so
        the next append or read does not race the broker's metadata."""
        admin = self._require_started()
        deadline = time.monotonic() + _REQUEST_TIMEOUT_MS / 1000
        pending = list(topics)
        while pending:
            with self._errors("reading topic metadata"):
                metas = await topic_metadata(admin, pending)
            ready = {
                m["topic"]: len(m["partitions"])
                for m in metas
                if m["error_code"] == 0
                and m["partitions"]
                and all(p["leader"] >= 0 for p in m["partitions"])
            }
            if ready:
                # the metadata names a leader a moment before that leader serves the
                # partition; listing offsets succeeds (aiokafka retries) once it does
                tps = [TopicPartition(t, p) for t, n in ready.items() for p in range(n)]
                with self._errors("waiting for new topics to be served"):
                    await self._end_offsets(tps)
            pending = [t for t in pending if t not in ready]
            if pending and time.monotonic() > deadline:
                raise LogError(f"topics {pending} have no leader yet; is the cluster healthy?")
            if pending:
                await asyncio.sleep(0.05)

    async def _reader(self, topic: str, partition: int) -> PartitionReader:
        key = (topic, partition)
        if key not in self._readers:
            async with self._open_lock:  # one reader per partition, even when raced
                if key not in self._readers:
                    self._require_started()
                    reader = PartitionReader(self._consumer(group_id=None),
                                             TopicPartition(topic, partition), self._end_offsets)
                    with self._errors(f"opening a reader for {topic}[{partition}]"):
                        await reader.start()
                    self._readers[key] = reader
            while len(self._readers) > _MAX_READERS:
                _, evicted = self._readers.popitem(last=False)
                async with evicted.lock:  # let a read in progress finish
                    await evicted.close()
        self._readers.move_to_end(key)
        return self._readers[key]

    async def _group(self, group: str) -> GroupClient:
        if group not in self._groups:
            async with self._open_lock:
                if group not in self._groups:
                    self._require_started()
                    client = GroupClient(self._consumer(group_id=group))
                    with self._errors(f"opening a client for group {group!r}"):
                        await client.consumer.start()
                    self._groups[group] = client
            while len(self._groups) > _MAX_GROUPS:
                _, evicted = self._groups.popitem(last=False)
                async with evicted.lock:
                    await stop_quietly(evicted.consumer)
        self._groups.move_to_end(group)
        return self._groups[group]

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn aiokafka's exceptions into LogError with a message that says what to do."""
        # every message goes through scrub: should any library message quote the
        # password, it never reaches a log line or a terminal
        scrub = self.security.scrub
        where = f"{self.bootstrap_servers} ({self.security.describe()})"
        try:
            yield
        except LogError:
            raise
        except BootstrapFailed as exc:
            raise LogError(scrub(
                f"cannot connect to the Kafka cluster at {where} while {action}: {exc}. "
                + connection_hint(str(exc), self.security)),
                code="LOG_UNREACHABLE", bootstrap_servers=self.bootstrap_servers,
            ) from None
        except KafkaConnectionError as exc:
            raise LogError(scrub(
                f"cannot reach the Kafka cluster at {where} while {action}: "
                f"{exc}. Check that a broker is running and listening there and that "
                "bootstrap_servers names it (host:port[,host:port…])."),
                bootstrap_servers=self.bootstrap_servers,
            ) from exc
        except (KafkaTimeoutError, TimeoutError) as exc:
            raise LogError(
                scrub(f"Kafka at {where} did not answer in time while {action}: {exc!r}"),
                bootstrap_servers=self.bootstrap_servers,
            ) from exc
        except Exception as exc:
            raise LogError(scrub(f"Kafka failed while {action}: {exc!r}")) from exc


_HEADER_BYTES: dict[Headers, int] = {}


def require_kafka(log_: Log, needs: str) -> KafkaLog:
    """``log_`` as the :class:`KafkaLog` that ``needs`` (a Kafka-only part, chosen
    because the log's capabilities asked for it) runs on."""
    if not isinstance(log_, KafkaLog):
        raise LogError(f"{needs} runs on a KafkaLog, not a {type(log_).__name__} (its "
                       f"capabilities {log_.capabilities} promise what only Kafka has)")
    return log_


def _header_bytes(headers: Headers) -> int:
    # Events share a few header tuples (one per type and version): remember their
    # size instead of summing it for every record.
    try:
        size = _HEADER_BYTES.get(headers)
    except TypeError:  # not hashable (a list from some caller): just count it
        return sum(len(name.encode()) + len(value) + 8 for name, value in headers)
    if size is None:
        size = sum(len(name.encode()) + len(value) + 8 for name, value in headers)
        if len(_HEADER_BYTES) < 1024:
            _HEADER_BYTES[headers] = size
    return size


def _check_size(record: OutRecord) -> None:
    """Refuse a record the producer could not send before anything is sent: a batch
    the broker refuses would retire the writer (see ``KafkaWriter._fail``)."""
    size = len(record.value) + len(record.key or b"") + _RECORD_OVERHEAD_BYTES
    size += _header_bytes(record.headers)
    if size > _MAX_REQUEST_BYTES:
        raise LogError(
            f"a record for topic {record.topic!r} is {size} bytes; Kafka takes at most "
            f"{_MAX_REQUEST_BYTES} (keep large payloads outside the log)",
            topic=record.topic,
        )
