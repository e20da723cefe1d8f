"""What the embedded log promises beyond the log contract: its offsets are dense.

Every record takes exactly one offset and nothing else takes any, so a partition's
offsets run 0, 1, 2, ... across appends and its end offset is its record count. Kafka
with transactions does not keep this (commit markers take offsets), so it is not part
of the shared contract in ``log_contract.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowmonkey.log import EmbeddedLog, Log, OutRecord, Position, TopicSpec

PARTITIONS = 3


@pytest.fixture(params=["memory", "disk"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Log]:
    # on disk with a tiny segment size, so that offsets also stay dense across rolls
    embedded = (EmbeddedLog() if request.param == "memory"
                else EmbeddedLog(tmp_path / "data", segment_bytes=256))
    async with embedded as started:
        yield started


@pytest.fixture
async def topic(log: Log) -> str:
    await log.create_topics([TopicSpec("events", PARTITIONS)])
    return "events"


async def test_offsets_grow_by_one_per_record_across_appends(log: Log, topic: str) -> None:
    first = await log.append(
        [OutRecord(topic, b"a", partition=0), OutRecord(topic, b"b", partition=1)]
    )
    second = await log.append(
        [OutRecord(topic, b"c", partition=0), OutRecord(topic, b"d", partition=0)]
    )
    third = await log.append([OutRecord(topic, b"e", partition=1)])

    assert first == [Position(topic, 0, 0), Position(topic, 1, 0)]
    assert second == [Position(topic, 0, 1), Position(topic, 0, 2)]
    assert third == [Position(topic, 1, 1)]
    assert [r.offset for r in await log.read(topic, 0, 0)] == [0, 1, 2]


async def test_end_offset_is_the_record_count(log: Log, topic: str) -> None:
    for count in range(1, 6):
        await log.append([OutRecord(topic, b"v", partition=1)])
        assert await log.end_offset(topic, 1) == count
    await log.append([OutRecord(topic, b"v", partition=2) for _ in range(4)])

    assert await log.end_offset(topic, 2) == 4
    assert await log.end_offset(topic, 0) == 0


async def test_records_spread_over_partitions_add_up_to_the_end_offsets(
    log: Log, topic: str
) -> None:
    await log.append([OutRecord(topic, b"v%d" % i) for i in range(6)])

    assert sum([await log.end_offset(topic, p) for p in range(PARTITIONS)]) == 6


async def test_recreating_a_topic_keeps_its_end_offset(log: Log, topic: str) -> None:
    await log.append([OutRecord(topic, b"v", partition=0)])

    await log.create_topics([TopicSpec(topic, PARTITIONS + 2)])

    assert await log.end_offset(topic, 0) == 1
