"""Exactly once on a real broker: what the processor relies on from the Kafka log.

* an aborted transaction leaves nothing readable, neither records nor offsets;
* offsets committed in a transaction become visible together with its records;
* starting a writer with a transactional id fences the older writer with that id
  (zombie fencing: one transactional id per owned input partition, DESIGN §9).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from flowmonkey.errors import LogError
from flowmonkey.log import OutRecord, TopicSpec
from flowmonkey.log.kafka import KafkaLog

pytestmark = pytest.mark.integration

SMALL_MESSAGES = {"max.message.bytes": "1024"}  # a topic whose broker refuses big records


@pytest.fixture
async def log(kafka_bootstrap: str, kafka_prefix: str) -> AsyncIterator[KafkaLog]:
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}client") as log:
        await log.create_topics(
            [
                TopicSpec(f"{kafka_prefix}commands", 2),
                TopicSpec(f"{kafka_prefix}events", 2),
                TopicSpec(f"{kafka_prefix}small", 1, config=SMALL_MESSAGES),
            ]
        )
        yield log


@pytest.fixture
def commands(kafka_prefix: str) -> str:
    return f"{kafka_prefix}commands"


@pytest.fixture
def events(kafka_prefix: str) -> str:
    return f"{kafka_prefix}events"


@pytest.fixture
def group(kafka_prefix: str) -> str:
    return f"{kafka_prefix}processor"


async def read_uncommitted(bootstrap: str, topic: str, partition: int) -> list[bytes]:
    """Everything physically in the partition, aborted records included."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_uncommitted",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        values: list[bytes] = []
        async with asyncio.timeout(30):
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=200)
                values.extend(m.value for m in batch.get(tp, []))
        return values
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll ``check`` until it holds: a plain client's commit becomes visible a little
    after ``commit_transaction`` returns (the broker writes the markers afterwards)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s}s")
        await asyncio.sleep(0.01)


# --- aborted transactions -----------------------------------------------------------------


async def test_an_aborted_append_leaves_no_records_and_no_offsets(
    log: KafkaLog, kafka_bootstrap: str, kafka_prefix: str, events: str, commands: str, group: str
) -> None:
    # given an append whose records reach the broker but one of which it refuses
    with pytest.raises(LogError, match="small"):
        await log.append(
            [
                OutRecord(events, b"event-1", partition=0),
                OutRecord(events, b"event-2", partition=0),
                OutRecord(f"{kafka_prefix}small", b"x" * 4096),
            ],
            commit_group=group,
            commit_offsets={(commands, 0): 1},
        )
    # then the partition holds the aborted records, but reading shows none of them
    assert await read_uncommitted(kafka_bootstrap, events, 0) == [b"event-1", b"event-2"]
    assert await log.read(events, 0, 0) == []
    assert await log.end_offset(events, 0) == 3  # two aborted records and the abort marker
    assert await log.committed(group, commands, 0) is None
    # and the next append commits normally, after the aborted records and marker
    [position] = await log.append([OutRecord(events, b"event-3", partition=0)])
    assert position.offset == 3
    assert [r.value for r in await log.read(events, 0, 0)] == [b"event-3"]
    assert await log.wait_for(events, 0, 0, timeout_s=1) is True


async def test_a_record_too_large_for_kafka_is_refused_before_anything_is_sent(
    log: KafkaLog, kafka_bootstrap: str, events: str
) -> None:
    with pytest.raises(LogError, match="bytes"):
        await log.append(
            [OutRecord(events, b"ok", partition=1), OutRecord(events, b"x" * 2_000_000)]
        )

    assert await read_uncommitted(kafka_bootstrap, events, 1) == []
    assert [p.offset for p in await log.append([OutRecord(events, b"ok", partition=1)])] == [0]


async def test_reading_skips_a_transaction_another_client_aborted(
    log: KafkaLog, kafka_bootstrap: str, kafka_prefix: str, events: str
) -> None:
    # given committed, aborted, committed transactions from a plain Kafka client
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{kafka_prefix}other"
    )
    await producer.start()
    try:
        for value, commit in [(b"one", True), (b"aborted", False), (b"two", True)]:
            await producer.begin_transaction()
            await (await producer.send(events, value, partition=1))
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()

    # when the Kafka log reads the partition (after waiting for the last commit marker)
    async def last_commit_visible() -> bool:
        return any(r.value == b"two" for r in await log.read(events, 1, 0))

    await eventually(last_commit_visible)
    records = await log.read(events, 1, 0)
    # then it sees only the committed records, at increasing offsets with gaps
    assert [r.value for r in records] == [b"one", b"two"]
    assert records[1].offset - records[0].offset > 1
    assert await log.read(events, 1, records[0].offset + 1) == records[1:]


# --- offsets travel with the records ------------------------------------------------------


async def test_offsets_in_an_open_transaction_stay_invisible_until_it_commits(
    log: KafkaLog, kafka_bootstrap: str, kafka_prefix: str, events: str, commands: str, group: str
) -> None:
    # given an open transaction holding records and the group's offsets
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{kafka_prefix}open"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({TopicPartition(commands, 1): 5}, group)
        await (await producer.send(events, b"pending", partition=1))
        # then neither the records nor the offsets can be seen yet
        assert await log.read(events, 1, 0) == []
        assert await log.end_offset(events, 1) == 0
        assert await log.committed(group, commands, 1) is None
        # when it commits
        await producer.commit_transaction()
    finally:
        await producer.stop()
    # then both become visible
    assert await log.wait_for(events, 1, 0, timeout_s=10) is True
    assert [r.value for r in await log.read(events, 1, 0)] == [b"pending"]

    async def offsets_visible() -> bool:
        return await log.committed(group, commands, 1) == 5

    await eventually(offsets_visible)


async def test_an_append_with_offsets_makes_both_visible_when_it_returns(
    log: KafkaLog, events: str, commands: str, group: str
) -> None:
    for n in range(1, 21):
        positions = await log.append(
            [OutRecord(events, b"event-%d" % n, partition=0)],
            commit_group=group,
            commit_offsets={(commands, 0): n},
        )
        assert [r.value for r in await log.read(events, 0, positions[0].offset)] == [
            b"event-%d" % n
        ]
        assert await log.committed(group, commands, 0) == n


# --- zombie fencing -----------------------------------------------------------------------


async def test_a_newer_writer_with_the_same_transactional_id_fences_the_older(
    kafka_bootstrap: str, kafka_prefix: str, log: KafkaLog, events: str, commands: str, group: str
) -> None:
    transactional_id = f"{kafka_prefix}processor.{commands}.0"
    # given a processor instance that owns commands[0] and has appended once
    async with KafkaLog(kafka_bootstrap) as old_instance:
        zombie = await old_instance.transactional(transactional_id)
        await zombie.append(
            [OutRecord(events, b"from-old", partition=0)],
            commit_group=group,
            commit_offsets={(commands, 0): 1},
        )
        # when the partition moves to another instance, which opens its writer
        async with KafkaLog(kafka_bootstrap) as new_instance:
            owner = await new_instance.transactional(transactional_id)
            # then the old writer's next append is refused, and stays refused
            for _ in range(2):
                with pytest.raises(LogError) as refused:
                    await zombie.append(
                        [OutRecord(events, b"from-zombie", partition=0)],
                        commit_group=group,
                        commit_offsets={(commands, 0): 2},
                    )
                assert refused.value.code == "LOG_FENCED"
                assert transactional_id in refused.value.message
            assert zombie.fenced
            # while the new owner appends and commits normally
            await owner.append(
                [OutRecord(events, b"from-new", partition=0)],
                commit_group=group,
                commit_offsets={(commands, 0): 2},
            )
            assert not owner.fenced
            await owner.close()
        await zombie.close()
    # and nothing the zombie tried became visible
    assert [r.value for r in await log.read(events, 0, 0)] == [b"from-old", b"from-new"]
    assert await log.committed(group, commands, 0) == 2


async def test_a_new_writer_aborts_the_open_transaction_of_the_one_it_fences(
    kafka_bootstrap: str, kafka_prefix: str, log: KafkaLog, events: str, commands: str, group: str
) -> None:
    transactional_id = f"{kafka_prefix}processor.{commands}.1"
    # given a zombie that died (or hangs) in the middle of a transaction
    zombie = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id)
    await zombie.start()
    try:
        await zombie.begin_transaction()
        await zombie.send_offsets_to_transaction({TopicPartition(commands, 1): 9}, group)
        await (await zombie.send(events, b"half-done", partition=1))
        # when the new owner of the partition starts its writer
        owner = await log.transactional(transactional_id)
        await owner.append([OutRecord(events, b"redone", partition=1)])
        # then the zombie's transaction was aborted: only the new owner's work is visible
        assert [r.value for r in await log.read(events, 1, 0)] == [b"redone"]
        assert await log.committed(group, commands, 1) is None
        assert await read_uncommitted(kafka_bootstrap, events, 1) == [b"half-done", b"redone"]
        await owner.close()
    finally:
        await zombie.stop()


# --- errors ---------------------------------------------------------------------------------


async def test_an_unreachable_broker_is_a_log_error_that_names_it() -> None:
    with pytest.raises(LogError, match=r"127\.0\.0\.1:9.*broker is running"):
        await KafkaLog("127.0.0.1:9").start()


async def test_a_writer_that_failed_an_append_is_retired_and_can_be_replaced(
    log: KafkaLog, kafka_prefix: str, events: str
) -> None:
    transactional_id = f"{kafka_prefix}processor.retired"
    writer = await log.transactional(transactional_id)
    # given a writer whose append the broker refused
    with pytest.raises(LogError):
        await writer.append([OutRecord(f"{kafka_prefix}small", b"x" * 4096)])
    # then it refuses further appends, without being fenced
    assert not writer.usable
    assert not writer.fenced
    with pytest.raises(LogError) as refused:
        await writer.append([OutRecord(events, b"v", partition=0)])
    assert refused.value.code == "LOG_WRITER_FAILED"
    # and a new writer with the same id takes over
    await writer.close()
    replacement = await log.transactional(transactional_id)
    await replacement.append([OutRecord(events, b"v", partition=0)])
    assert [r.value for r in await log.read(events, 0, 0)] == [b"v"]
    await replacement.close()
