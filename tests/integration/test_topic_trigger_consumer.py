"""Topic triggers on a real broker: every record of the external topic sends one
``trigger.fire`` command (or, if it is not JSON, one dead letter with the reason), and
the group's offsets are committed with them, through a rebalance between two
consumers of the group and a graceful stop of one of them mid-way."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_command
from flowmonkey.log import TopicSpec
from flowmonkey.log.base import Record
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import Trigger
from flowmonkey.processors.topic_triggers import TopicTriggerConsumer

pytestmark = pytest.mark.integration

PARTITIONS = 3
RECORDS = 1500
BAD_EVERY = 100  # every 100th record is not JSON


async def _eventually(check: Callable[[], Awaitable[bool]], what: str,
                      timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _produce(bootstrap: str, topic: str, numbers: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = []
        for i in numbers:
            value = b"<not json>" if i % BAD_EVERY == 0 else orjson.dumps({"i": i})
            futures.append(await producer.send(topic, value, key=str(i).encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _read_all(log: KafkaLog, topic: str, partitions: int) -> list[Record]:
    out: list[Record] = []
    for partition in range(partitions):
        offset = 0
        while records := await log.read(topic, partition, offset, 5000):
            out.extend(records)
            offset = records[-1].offset + 1
    return out


async def test_every_record_fires_once_or_is_dead_lettered_through_a_rebalance(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    topics = Topics(kafka_prefix.rstrip("-"))
    external = f"{kafka_prefix}orders"
    trigger = Trigger.model_validate({"id": "orders-in", "kind": "topic", "flowId": "order",
                                      "topic": {"topic": external}})
    async with KafkaLog(kafka_bootstrap, topic_prefix=topics.prefix,
                        client_id="trigger-test") as log:
        await log.create_topics([*topics.specs(2), TopicSpec(external, PARTITIONS)])
        first = TopicTriggerConsumer(log, topics, trigger, max_poll_records=100)
        second_log = KafkaLog(kafka_bootstrap, topic_prefix=topics.prefix,
                              client_id="trigger-test-2")
        await second_log.start()
        second = TopicTriggerConsumer(second_log, topics, trigger, max_poll_records=100)

        async def consumed() -> int:
            total = 0
            for p in range(PARTITIONS):
                total += await log.committed(first.group, external, p) or 0
            return total

        async def ends() -> int:
            return sum([await log.end_offset(external, p) for p in range(PARTITIONS)])

        try:
            # given one consumer of the trigger's group, and the first half of the records
            await first.start()
            assert await first.wait_assigned(30)
            await _produce(kafka_bootstrap, external, range(RECORDS // 2))
            await _eventually(lambda: _more(consumed, 200), "the first records to be fired")
            # when a second consumer joins (a rebalance) and the rest arrive
            await second.start()
            assert await second.wait_assigned(60)
            await _produce(kafka_bootstrap, external, range(RECORDS // 2, RECORDS))
            await _eventually(lambda: _more(consumed, RECORDS * 3 // 4), "more records fired")
            # and the first one stops mid-way (its partitions move to the second)
            await first.stop()
            end = await ends()
            await _eventually(lambda: _equal(consumed, end), "every offset to be committed")
            assert first.failure() is None
            assert second.failure() is None
        finally:
            await first.stop()
            await second.stop()
            await second_log.close()

        # then every JSON record fired its trigger exactly once
        commands = [decode_command(r.value) for r in
                    await _read_all(log, topics.commands, 2)]
        fires = [c for c in commands if c.type == n.CMD_TRIGGER_FIRE]
        assert {c.execution_id for c in fires} == {"trigger:orders-in"}
        numbers = collections.Counter(c.data["arrival"]["value"]["i"] for c in fires)
        good = {i for i in range(RECORDS) if i % BAD_EVERY}
        assert set(numbers) == good
        assert max(numbers.values()) == 1, "a record fired twice"
        assert first.fired + second.fired == len(good)
        assert first.fired > 0
        assert second.fired > 0
        for command in fires:
            arrival, source = command.data["arrival"], command.data["source"]
            assert arrival["key"] == str(arrival["value"]["i"])
            assert source == {"kind": "topic", "key": f"{external}:{arrival['partition']}:"
                                                      f"{arrival['offset']}"}
        # and every other record is in the dead-letter topic once, with the reason
        dead = await _read_all(log, topics.dead_letter, 1)
        assert sorted(int(r.key or b"") for r in dead) == sorted(set(range(RECORDS)) - good)
        for record in dead:
            assert record.value == b"<not json>"
            assert (record.header("fm-error") or b"").startswith(
                b"topic trigger 'orders-in': the value is not JSON")
        assert first.dead_lettered + second.dead_lettered == len(dead)


async def _more(count: Callable[[], Awaitable[int]], than: int) -> bool:
    return await count() > than


async def _equal(count: Callable[[], Awaitable[int]], to: int) -> bool:
    return await count() == to
