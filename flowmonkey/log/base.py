"""The Log interface: an append-only, partitioned, offset-addressed record log.

Both backends (the embedded log and Kafka) implement :class:`Log`, and one contract
suite (``tests/contract/log_contract.py``) runs against each of them.

Records are bytes plus headers; the log never looks inside them. Routing is by key
with Kafka's default partitioner (murmur2), so any Kafka client publishing a command
with the execution id as key lands on the same partition as the engine would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Headers = tuple[tuple[str, bytes], ...]

LOST_RECORD_HEADER = "flowmonkey-lost-record"
"""The header of a placeholder that ``flowmonkey log repair`` writes at the offset of
a record it could not keep (no key, an empty value): readers skip it."""


DEFAULT_TOPIC_PREFIX = "flowmonkey"
"""The topic prefix of a log that is given none."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to append. ``partition=None`` routes by ``key`` (murmur2)."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """A record read back from the log, with its position."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = ()
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def lost(self) -> bool:
        """A placeholder for a record lost to damage (:data:`LOST_RECORD_HEADER`)."""
        return not self.value and self.header(LOST_RECORD_HEADER) is not None


@dataclass(frozen=True, slots=True)
class Position:
    """Where an appended record landed."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LogCapabilities:
    """What a log can do besides the :class:`Log` protocol; generic code (the engine,
    the projector, the partition processors) asks these instead of the log's class.

    ``default_partitions``: the partition count of the topics an engine or a projector
    service creates on it (a :class:`TopicSpec` always says its own).

    ``keeps_decoded``: a record appended here keeps the object its bytes encode for
    readers in this process (:mod:`flowmonkey.log.decoded`), so writers attach it.

    ``consumer_groups``: processes share a topic's partitions through a consumer group
    that assigns and moves them, each owner writing with a transactional writer of
    its own (:class:`~flowmonkey.processors.group.GroupProcessors`, the projector
    service's group). Without it one process owns every partition.

    ``tail``: one consumer can follow every partition of a topic at once (a long poll
    instead of a reader per partition).

    ``shared_topics``: the topics outlive the process and other processes create them
    (a cluster): an engine checks existing ones before using them, and a projector
    service leaves creating them to the processors (or ``flowmonkey topics create``).
    """

    default_partitions: int = 4
    keeps_decoded: bool = False
    consumer_groups: bool = False
    tail: bool = False
    shared_topics: bool = False


@runtime_checkable
class Log(Protocol):
    """An append-only partitioned log.

    Offsets start at 0 per partition and increase in append order; one append's records
    in a partition get consecutive offsets, but offsets need not be dense across appends
    (Kafka transaction markers take offsets). ``commit`` stores a
    consumer group's next offset to read (Kafka semantics: the offset *after* the last
    processed record).

    ``topic_prefix`` names the topics built on this log (``<prefix>.commands`` …): an
    engine or a projector service takes its prefix from its log.

    ``capabilities`` says what else it can do (:class:`LogCapabilities`).
    """

    topic_prefix: str

    @property
    def capabilities(self) -> LogCapabilities: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create_topics(self, topics: Sequence[TopicSpec]) -> None:
        """Create topics that do not exist yet; existing ones are left alone."""
        ...

    async def partitions_for(self, topic: str) -> int: ...

    async def append(
        self,
        records: Sequence[OutRecord],
        *,
        commit_group: str | None = None,
        commit_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> list[Position]:
        """Append records atomically with an optional offsets commit for a group.

        All records and the offsets become visible together or not at all (a Kafka
        transaction, or one fsync'd write on the embedded log).
        """
        ...

    async def publish(self, records: Sequence[OutRecord]) -> list[Position]:
        """Append records that need no atomicity with one another or with any offsets
        (a client's commands), in order within each partition.

        A backend may do this more cheaply than :meth:`append`: Kafka sends them with
        an idempotent producer (one acknowledged request) instead of a transaction.
        A failed publish may have appended some of the records; callers that retry
        rely on the readers' deduplication (the processors dedupe commands by id).
        """
        ...

    async def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[Record]:
        """Records from ``offset`` on (at most ``max_records``); [] when none yet."""
        ...

    async def wait_for(self, topic: str, partition: int, offset: int, timeout_s: float) -> bool:
        """Wait until a record at ``offset`` or later exists; False on timeout."""
        ...

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next appended record will get."""
        ...

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None: ...

    async def committed(self, group: str, topic: str, partition: int) -> int | None: ...
