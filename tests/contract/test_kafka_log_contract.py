"""The log contract, run against the Kafka log on a real broker, exactly once and at
least once. Every test has its own topic prefix; its topics are deleted afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.log import Log, OutRecord, TopicSpec
from flowmonkey.log.kafka import KafkaLog
from tests.contract.log_contract import PARTITIONS, LogContract

pytestmark = pytest.mark.integration


class KafkaLogContract(LogContract):
    exactly_once: bool

    @pytest.fixture
    def topic_prefix(self, kafka_prefix: str) -> str:
        return kafka_prefix.rstrip("-")

    @pytest.fixture
    async def log(self, kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Log]:
        async with KafkaLog(
            kafka_bootstrap,
            topic_prefix=topic_prefix,
            exactly_once=self.exactly_once,
            client_id=f"{topic_prefix}.client",
        ) as log:
            yield log


class TestKafkaLogAtLeastOnce(KafkaLogContract):
    exactly_once = False


class TestKafkaLogExactlyOnce(KafkaLogContract):
    """Each append is a transaction, and its commit marker takes one offset in every
    partition it wrote: offsets grow in append order but are not dense across appends.
    The four tests below restate the contract's dense-offset assertions that way."""

    exactly_once = True

    async def test_creating_an_existing_topic_again_leaves_it_as_it_was(
        self, log: Log, topic: str
    ) -> None:
        await log.append([OutRecord(topic, b"v", partition=0)])

        await log.create_topics([TopicSpec(topic, PARTITIONS)])
        await log.create_topics([TopicSpec(topic, PARTITIONS + 2)])

        assert await log.partitions_for(topic) == PARTITIONS
        assert [r.value for r in await log.read(topic, 0, 0)] == [b"v"]

    async def test_offsets_start_at_zero_and_grow_by_one_in_each_partition(
        self, log: Log, topic: str
    ) -> None:
        first = await log.append(
            [OutRecord(topic, b"a", partition=0), OutRecord(topic, b"b", partition=1)]
        )
        second = await log.append(
            [OutRecord(topic, b"c", partition=0), OutRecord(topic, b"d", partition=0)]
        )
        # within one append offsets are consecutive; the first append's marker sits
        # between the two appends
        assert [(p.partition, p.offset) for p in first] == [(0, 0), (1, 0)]
        assert [p.partition for p in second] == [0, 0]
        assert first[0].offset < second[0].offset
        assert second[1].offset == second[0].offset + 1
        records = await log.read(topic, 0, 0)
        assert [(r.offset, r.value) for r in records] == [
            (0, b"a"),
            (second[0].offset, b"c"),
            (second[1].offset, b"d"),
        ]

    async def test_records_without_key_or_partition_land_in_some_partition(
        self, log: Log, topic: str
    ) -> None:
        positions = await log.append([OutRecord(topic, b"v%d" % i) for i in range(6)])

        assert all(0 <= p.partition < PARTITIONS for p in positions)
        read = [r for p in range(PARTITIONS) for r in await log.read(topic, p, 0)]
        assert sorted(r.value for r in read) == [b"v%d" % i for i in range(6)]

    async def test_end_offset_is_the_offset_the_next_record_gets(
        self, log: Log, topic: str
    ) -> None:
        appended = await log.append([OutRecord(topic, b"v", partition=1) for _ in range(4)])

        end = await log.end_offset(topic, 1)
        assert end > appended[-1].offset
        [position] = await log.append([OutRecord(topic, b"v", partition=1)])
        assert position.offset == end
        assert await log.end_offset(topic, 0) == 0
