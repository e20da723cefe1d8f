"""KafkaLog.publish: independent records (clients' commands) without a transaction."""

from __future__ import annotations

import pytest

from flowmonkey.log import OutRecord, TopicSpec
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.partitioner import partition_for

pytestmark = pytest.mark.integration


async def test_published_records_are_readable_at_once_where_their_key_routes_them(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    topic = f"{kafka_prefix}commands"
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}client") as log:
        await log.create_topics([TopicSpec(topic, 3)])
        keys = [f"execution-{i}".encode() for i in range(6)]
        positions = await log.publish([OutRecord(topic, b"v" + k, key=k) for k in keys])
        assert [p.partition for p in positions] == [partition_for(k, 3) for k in keys]
        for key, position in zip(keys, positions, strict=True):
            # no wait: an acknowledged publish is readable by a read_committed reader
            [record] = await log.read(topic, position.partition, position.offset, 1)
            assert record.key == key
            assert record.value == b"v" + key
