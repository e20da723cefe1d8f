"""The behaviour every :class:`~flowmonkey.log.base.Log` backend must have.

A backend's test module subclasses :class:`LogContract` and provides the ``log``
fixture (a started log, closed after the test). The tests use only the ``Log``
interface and put every topic and group under ``topic_prefix``, so the same class
runs against a shared Kafka cluster; a backend may override ``topic_prefix`` (for
instance to have its topics deleted afterwards).

The offset rule every backend keeps, per partition:

* a new partition's end offset is 0, and the end offset is always the offset the next
  appended record gets, so it is past every readable record;
* offsets increase in append order, and one append's records in a partition get
  consecutive offsets;
* reads return records in offset order, each at the offset its append returned.

Offsets need not be dense *across* appends: on Kafka with transactions each append's
commit marker takes an offset that no record has. The embedded log's offsets are
dense; ``test_embedded_log_offsets.py`` checks that on its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from flowmonkey.errors import LogError
from flowmonkey.log import Log, OutRecord, Position, TopicSpec
from flowmonkey.log.partitioner import partition_for

PARTITIONS = 3
WAIT_S = 5.0  # generous: a remote broker may be slow, a passing test never waits this long


class LogContract:
    @pytest.fixture
    async def log(self) -> AsyncIterator[Log]:
        raise NotImplementedError("a backend's contract test provides a started Log")
        yield  # noqa: PT022 - an async generator, so that overrides may tear down

    @pytest.fixture
    def topic_prefix(self) -> str:
        return f"fm-contract-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    async def topic(self, log: Log, topic_prefix: str) -> str:
        name = f"{topic_prefix}.events"
        await log.create_topics([TopicSpec(name, PARTITIONS)])
        return name

    @pytest.fixture
    def group(self, topic_prefix: str) -> str:
        return f"{topic_prefix}.group"

    # --- topics -------------------------------------------------------------------------

    async def test_creating_an_existing_topic_again_leaves_it_as_it_was(
        self, log: Log, topic: str
    ) -> None:
        # given a topic with a record in it
        [position] = await log.append([OutRecord(topic, b"v", partition=0)])
        end = await log.end_offset(topic, 0)
        # when it is created again, even with another partition count
        await log.create_topics([TopicSpec(topic, PARTITIONS)])
        await log.create_topics([TopicSpec(topic, PARTITIONS + 2)])
        # then it keeps its partitions, its record and its end offset
        assert await log.partitions_for(topic) == PARTITIONS
        assert [(r.offset, r.value) for r in await log.read(topic, 0, 0)] == [
            (position.offset, b"v")
        ]
        assert await log.end_offset(topic, 0) == end

    async def test_several_topics_can_be_created_in_one_call(
        self, log: Log, topic_prefix: str
    ) -> None:
        await log.create_topics(
            [TopicSpec(f"{topic_prefix}.a", 1), TopicSpec(f"{topic_prefix}.b", 2)]
        )

        assert await log.partitions_for(f"{topic_prefix}.a") == 1
        assert await log.partitions_for(f"{topic_prefix}.b") == 2

    async def test_a_new_topic_is_empty(self, log: Log, topic: str) -> None:
        for partition in range(PARTITIONS):
            assert await log.end_offset(topic, partition) == 0
            assert await log.read(topic, partition, 0) == []

    # --- appending ----------------------------------------------------------------------

    async def test_offsets_start_at_zero_and_grow_in_append_order_in_each_partition(
        self, log: Log, topic: str
    ) -> None:
        # when records go to two partitions, across three appends
        first = await log.append(
            [OutRecord(topic, b"a", partition=0), OutRecord(topic, b"b", partition=1)]
        )
        second = await log.append(
            [OutRecord(topic, b"c", partition=0), OutRecord(topic, b"d", partition=0)]
        )
        third = await log.append(
            [OutRecord(topic, b"e", partition=1), OutRecord(topic, b"f", partition=0)]
        )
        # then each partition numbers its own records from 0 ...
        assert first == [Position(topic, 0, 0), Position(topic, 1, 0)]
        # ... later appends get higher offsets, one append's records consecutive ones
        assert [p.partition for p in second] == [0, 0]
        assert first[0].offset < second[0].offset
        assert second[1].offset == second[0].offset + 1
        assert [p.partition for p in third] == [1, 0]
        assert third[0].offset > first[1].offset
        assert third[1].offset > second[1].offset
        # and reads return each partition's records in that order, at those offsets
        assert [(r.offset, r.value) for r in await log.read(topic, 0, 0)] == [
            (0, b"a"), (second[0].offset, b"c"), (second[1].offset, b"d"),
            (third[1].offset, b"f"),
        ]
        assert [(r.offset, r.value) for r in await log.read(topic, 1, 0)] == [
            (0, b"b"), (third[0].offset, b"e"),
        ]

    async def test_reading_between_two_appends_starts_at_the_later_one(
        self, log: Log, topic: str
    ) -> None:
        first = await log.append([OutRecord(topic, b"%d" % i, partition=2) for i in range(2)])
        second = await log.append([OutRecord(topic, b"%d" % i, partition=2) for i in (2, 3)])

        # whatever lies between them (nothing, or a transaction marker), no record does
        records = await log.read(topic, 2, first[-1].offset + 1)

        assert [(r.offset, r.value) for r in records] == [(p.offset, b"%d" % i) for i, p in
                                                          zip((2, 3), second, strict=True)]

    async def test_keyed_records_land_on_kafkas_default_partition(
        self, log: Log, topic: str
    ) -> None:
        keys = [f"execution-{i}".encode() for i in range(20)]

        positions = await log.append([OutRecord(topic, b"v", key=key) for key in keys])

        assert [p.partition for p in positions] == [partition_for(k, PARTITIONS) for k in keys]

    async def test_an_explicit_partition_wins_over_the_key(self, log: Log, topic: str) -> None:
        key = b"execution-1"
        elsewhere = (partition_for(key, PARTITIONS) + 1) % PARTITIONS

        [position] = await log.append([OutRecord(topic, b"v", key=key, partition=elsewhere)])

        assert position.partition == elsewhere
        [record] = await log.read(topic, elsewhere, position.offset)
        assert record.key == key

    async def test_records_without_key_or_partition_land_in_some_partition(
        self, log: Log, topic: str
    ) -> None:
        positions = await log.append([OutRecord(topic, b"v%d" % i) for i in range(6)])

        assert all(0 <= p.partition < PARTITIONS for p in positions)
        # every record is where its position says, and nothing else was appended
        stored = {(r.partition, r.offset): r.value
                  for p in range(PARTITIONS) for r in await log.read(topic, p, 0)}
        assert stored == {(p.partition, p.offset): b"v%d" % i for i, p in enumerate(positions)}

    async def test_appending_nothing_returns_no_positions(self, log: Log, topic: str) -> None:
        assert await log.append([]) == []

    async def test_appending_to_an_unknown_topic_is_rejected(
        self, log: Log, topic_prefix: str
    ) -> None:
        with pytest.raises(LogError, match="missing"):
            await log.append([OutRecord(f"{topic_prefix}.missing", b"v")])

    async def test_an_append_with_one_bad_record_appends_none_of_them(
        self, log: Log, topic: str, topic_prefix: str
    ) -> None:
        # when the second record of an append names an unknown topic
        with pytest.raises(LogError):
            await log.append(
                [OutRecord(topic, b"ok", partition=0), OutRecord(f"{topic_prefix}.missing", b"v")]
            )
        # then the first was not appended either
        assert await log.end_offset(topic, 0) == 0

    async def test_appending_to_a_partition_out_of_range_is_rejected(
        self, log: Log, topic: str
    ) -> None:
        with pytest.raises(LogError):
            await log.append([OutRecord(topic, b"v", partition=PARTITIONS)])

    # --- reading ------------------------------------------------------------------------

    async def test_reading_returns_records_in_order_with_everything_intact(
        self, log: Log, topic: str
    ) -> None:
        # given records with and without key and headers, including empty values
        sent = [
            OutRecord(
                topic, b"first", key=b"k1", headers=(("type", b"a"), ("v", b"1")), partition=1
            ),
            OutRecord(topic, b"", key=None, partition=1),
            OutRecord(topic, bytes(range(256)), key=b"", headers=(("empty", b""),), partition=1),
        ]
        before_ms = time.time() * 1000
        await log.append(sent)
        after_ms = time.time() * 1000
        # when read back from offset 0
        records = await log.read(topic, 1, 0)
        # then they come back in order, as sent, with their position and a timestamp
        assert [(r.offset, r.key, r.value, r.headers) for r in records] == [
            (0, b"k1", b"first", (("type", b"a"), ("v", b"1"))),
            (1, None, b"", ()),
            (2, b"", bytes(range(256)), (("empty", b""),)),
        ]
        assert all(r.topic == topic and r.partition == 1 for r in records)
        assert all(before_ms - 5000 <= r.timestamp_ms <= after_ms + 5000 for r in records)
        assert records[0].header("v") == b"1"
        assert records[0].header("absent") is None

    async def test_published_records_are_read_back_at_their_positions_in_order(
        self, log: Log, topic: str
    ) -> None:
        # given client commands for three executions, published without a transaction
        sent = [OutRecord(topic, f"command-{i}".encode(), key=f"execution-{i % 3}".encode(),
                          headers=(("n", str(i).encode()),)) for i in range(9)]
        positions = await log.publish(sent)
        # then each is where its position says, routed by key like an append
        assert [p.partition for p in positions] == [
            partition_for(r.key or b"", PARTITIONS) for r in sent]
        for record, position in zip(sent, positions, strict=True):
            [found] = await log.read(topic, position.partition, position.offset, 1)
            assert (found.key, found.value, found.headers) == (
                record.key, record.value, record.headers)
        # and each partition holds them in the order they were published
        for partition in {p.partition for p in positions}:
            values = [r.value for r in await log.read(topic, partition, 0)]
            assert values == [r.value for r, p in zip(sent, positions, strict=True)
                              if p.partition == partition]

    async def test_reading_from_an_offset_skips_the_records_before_it(
        self, log: Log, topic: str
    ) -> None:
        await log.append([OutRecord(topic, b"%d" % i, partition=0) for i in range(5)])

        records = await log.read(topic, 0, 3)

        assert [(r.offset, r.value) for r in records] == [(3, b"3"), (4, b"4")]

    async def test_reading_at_or_past_the_end_returns_nothing(self, log: Log, topic: str) -> None:
        [position] = await log.append([OutRecord(topic, b"v", partition=0)])

        assert await log.read(topic, 0, position.offset + 1) == []
        assert await log.read(topic, 0, await log.end_offset(topic, 0)) == []
        assert await log.read(topic, 0, 50) == []

    async def test_reading_returns_at_most_max_records(self, log: Log, topic: str) -> None:
        await log.append([OutRecord(topic, b"%d" % i, partition=2) for i in range(10)])

        records = await log.read(topic, 2, 4, max_records=3)

        assert [r.offset for r in records] == [4, 5, 6]

    async def test_reading_an_unknown_topic_is_rejected(self, log: Log, topic_prefix: str) -> None:
        with pytest.raises(LogError):
            await log.read(f"{topic_prefix}.missing", 0, 0)

    async def test_end_offset_is_the_offset_the_next_record_gets(
        self, log: Log, topic: str
    ) -> None:
        # given four records in partition 1
        appended = await log.append([OutRecord(topic, b"v", partition=1) for _ in range(4)])
        # then its end offset is past every readable record ...
        end = await log.end_offset(topic, 1)
        assert end > appended[-1].offset
        assert await log.read(topic, 1, end) == []
        # ... and it is the offset the next record gets
        [position] = await log.append([OutRecord(topic, b"v", partition=1)])
        assert position.offset == end
        assert await log.end_offset(topic, 1) > position.offset
        # while a partition nothing was appended to stays at 0
        assert await log.end_offset(topic, 0) == 0

    # --- waiting ------------------------------------------------------------------------

    async def test_waiting_for_an_existing_record_returns_true_at_once(
        self, log: Log, topic: str
    ) -> None:
        await log.append([OutRecord(topic, b"v", partition=0)])

        assert await log.wait_for(topic, 0, 0, timeout_s=0.01) is True

    async def test_waiting_wakes_up_when_the_record_is_appended(self, log: Log, topic: str) -> None:
        # given a waiter for the first record of partition 2
        waiter = asyncio.create_task(log.wait_for(topic, 2, 0, timeout_s=WAIT_S))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        # when a record is appended there
        started = time.monotonic()
        await log.append([OutRecord(topic, b"v", partition=2)])
        # then the waiter returns True without waiting out its timeout
        assert await asyncio.wait_for(waiter, WAIT_S) is True
        assert time.monotonic() - started < WAIT_S / 2

    async def test_waiting_ignores_records_in_other_partitions_and_times_out(
        self, log: Log, topic: str
    ) -> None:
        waiter = asyncio.create_task(log.wait_for(topic, 0, 0, timeout_s=0.2))

        await log.append([OutRecord(topic, b"v", partition=1)])

        assert await waiter is False

    async def test_waiting_for_a_later_offset_times_out_when_nothing_arrives(
        self, log: Log, topic: str
    ) -> None:
        [position] = await log.append([OutRecord(topic, b"v", partition=0)])

        assert await log.wait_for(topic, 0, position.offset + 1, timeout_s=0.05) is False

    # --- consumer-group offsets ---------------------------------------------------------

    async def test_a_group_has_no_committed_offset_before_it_commits(
        self, log: Log, topic: str, group: str
    ) -> None:
        assert await log.committed(group, topic, 0) is None

    async def test_committed_offsets_are_read_back_per_partition(
        self, log: Log, topic: str, group: str
    ) -> None:
        await log.commit(group, {(topic, 0): 5, (topic, 2): 7})
        await log.commit(group, {(topic, 0): 6})

        assert await log.committed(group, topic, 0) == 6
        assert await log.committed(group, topic, 1) is None
        assert await log.committed(group, topic, 2) == 7

    async def test_groups_commit_independently(
        self, log: Log, topic: str, topic_prefix: str
    ) -> None:
        await log.commit(f"{topic_prefix}.one", {(topic, 0): 3})
        await log.commit(f"{topic_prefix}.two", {(topic, 0): 9})

        assert await log.committed(f"{topic_prefix}.one", topic, 0) == 3
        assert await log.committed(f"{topic_prefix}.two", topic, 0) == 9

    async def test_an_append_commits_offsets_together_with_its_records(
        self, log: Log, topic: str, topic_prefix: str, group: str
    ) -> None:
        # given a command topic the group consumes
        commands = f"{topic_prefix}.commands"
        await log.create_topics([TopicSpec(commands, PARTITIONS)])
        await log.append([OutRecord(commands, b"command", partition=1)])
        # when the group appends its output and commits past the command in one call
        positions = await log.append(
            [OutRecord(topic, b"event-1", partition=1), OutRecord(topic, b"event-2", partition=1)],
            commit_group=group,
            commit_offsets={(commands, 1): 1},
        )
        # then both the records and the offset are there
        assert [p.offset for p in positions] == [0, 1]
        assert [r.value for r in await log.read(topic, 1, 0)] == [b"event-1", b"event-2"]
        assert await log.committed(group, commands, 1) == 1

    async def test_a_rejected_append_commits_no_offsets(
        self, log: Log, topic: str, topic_prefix: str, group: str
    ) -> None:
        with pytest.raises(LogError):
            await log.append(
                [OutRecord(f"{topic_prefix}.missing", b"v")],
                commit_group=group,
                commit_offsets={(topic, 0): 1},
            )

        assert await log.committed(group, topic, 0) is None
