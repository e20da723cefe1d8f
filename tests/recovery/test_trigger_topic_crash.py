"""A topic trigger starts one execution per record with real processes on a real
Kafka broker, while its consumer and a processor are killed.

Two `flowmonkey processor` processes and one `flowmonkey trigger-consumer` run the
same --app, whose ``records-in`` trigger reads an external topic (4 partitions).
10,000 JSON records are produced to it, with 20 records that are not JSON among them.
Mid-way (30% of the offsets committed) the consumer is killed with SIGKILL and
started again; later (60% fired) so is the processor that decides the trigger's fires.
Then:

* exactly 10,000 ``trigger.fired``, one per JSON record's topic/partition/offset, and
  10,000 executions, each created once and completed once, each with the context of
  its own record;
* the 20 other records are in the dead-letter topic, each once, with its reason;
* the figures (records consumed, executions started, duplicates, dead letters) are
  printed and kept in /tmp/flowmonkey-trigger-figures.json.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from flowmonkey.events import names as n
from flowmonkey.log import TopicSpec
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.partitioner import partition_for
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import entity_id
from tests.recovery.crash_support import FLOWMONKEY, Proc
from tests.recovery.trigger_support import EventTail, owns, record_figures

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = Path(__file__).with_name("trigger_app.py")
PARTITIONS = 4
RECORDS = 10_000
BAD = 20  # records that are not JSON, spread among the others
TRIGGER = "records-in"


async def _produce(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    """The records, keyed by their number; returns (number, value) of each."""
    bad_at = set(range(RECORDS // BAD // 2, RECORDS + BAD, RECORDS // BAD))
    sent: list[tuple[int, bytes]] = []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for i in range(RECORDS + BAD):
            value = b"{broken json" if i in bad_at else orjson.dumps({"n": i})
            futures.append(await producer.send(topic, value, key=str(i).encode()))
            sent.append((i, value))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def _until(tail: EventTail, check: Callable[[], bool], what: str, timeout_s: float,
                 procs: list[Proc]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        await tail.poll()
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" +
                                 "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs))
        await asyncio.sleep(0.5)


async def test_a_topic_trigger_starts_one_execution_per_record_through_kills(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    prefix = kafka_prefix.rstrip("-")
    topics = Topics(prefix)
    external = f"{prefix}.external-records"
    env = {**os.environ, "FLOWMONKEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "FLOWMONKEY_TOPIC_PREFIX": prefix, "FLOWMONKEY_PARTITIONS": str(PARTITIONS),
           "TRIGGER_CRASH_TOPIC": external}
    env.pop("FLOWMONKEY_POSTGRES_DSN", None)
    env.pop("TRIGGER_CRASH_SCHEDULE", None)
    processor_args = [FLOWMONKEY, "processor", "--app", str(APP), "--group",
                      f"{prefix}-processors", "--progress-every", "1"]
    consumer_args = [FLOWMONKEY, "trigger-consumer", "--app", str(APP),
                     "--progress-every", "1", "--max-poll-records", "25"]
    entity = entity_id(TRIGGER)
    partition = partition_for(entity.encode(), PARTITIONS)
    procs: list[Proc] = []

    def fired() -> int:
        return sum(1 for e in tail.events
                   if e.execution_id == entity and e.type == n.TRIGGER_FIRED)

    def completed() -> int:
        return sum(1 for e in tail.events if e.type == n.EXECUTION_COMPLETED)

    async with KafkaLog(kafka_bootstrap, topic_prefix=prefix,
                        client_id="trigger-crash-reader") as log:
        await log.create_topics([*topics.specs(PARTITIONS), TopicSpec(external, PARTITIONS)])
        tail = EventTail(log, topics.events, PARTITIONS)
        started = time.monotonic()
        try:
            # given two processors and a trigger consumer
            procs += [Proc("processor-1", processor_args, env),
                      Proc("processor-2", processor_args, env),
                      Proc("consumer", consumer_args, env)]
            for proc in procs:
                proc.wait_for("Ctrl-C to stop", 90)
            # when 10,000 records (and 20 that are not JSON) arrive on the external topic
            sent = await _produce(kafka_bootstrap, external)
            total = sum([await log.end_offset(external, p) for p in range(PARTITIONS)])
            # and the consumer is killed mid-way and started again
            group = f"{prefix}-trigger-{TRIGGER}"

            async def committed() -> int:
                return sum([await log.committed(group, external, p) or 0
                            for p in range(PARTITIONS)])

            deadline = time.monotonic() + 120
            while await committed() < total * 3 // 10:
                assert time.monotonic() < deadline, "the consumer never got to 30%"
                await asyncio.sleep(0.1)
            procs[2].kill()
            committed_at_kill = await committed()
            assert committed_at_kill < total, "the consumer was done before the kill"
            procs.append(Proc("consumer-b", consumer_args, env))
            # and so is the processor deciding the trigger's fires, later: while the
            # restarted consumer is past 60% of the offsets but not done (a record can
            # fire only once its fire command is committed with its offset, so some are
            # still to fire; the events topic, read in bulk, would show that too late)
            deadline = time.monotonic() + 120
            while (before_kill := await committed()) < total * 6 // 10:
                assert time.monotonic() < deadline, "the new consumer never got to 60%"
                await asyncio.sleep(0.05)
            owner = next(p for p in procs[:2] if owns(p, partition))
            owner.kill()
            assert before_kill < total, "the consumer was done before the processor kill"
            await tail.poll()
            fired_at_kill = fired()
            procs.append(Proc(f"{owner.name}b", processor_args, env))
            await _until(tail, lambda: completed() >= RECORDS, "every execution to complete",
                         150, procs)
            deadline = time.monotonic() + 60
            while await committed() < total:
                assert time.monotonic() < deadline, "the consumer never committed the end"
                await asyncio.sleep(0.5)
            elapsed_s = time.monotonic() - started
        finally:
            for proc in procs:
                proc.stop()
        await tail.poll()
        events = tail.events
        dead = []
        offset = 0
        while records := await log.read(topics.dead_letter, 0, offset, 1000):
            dead.extend(records)
            offset = records[-1].offset + 1

    restarted_fired = _fired_by(procs[3])
    good = {i for i, value in sent if not value.startswith(b"{broken")}
    # then each JSON record fired the trigger once
    fires = [e for e in events if e.execution_id == entity and e.type == n.TRIGGER_FIRED]
    per_source = collections.Counter(e.data["source"]["key"] for e in fires)
    duplicated = sum(1 for count in per_source.values() if count > 1)
    execution_of = {e.data["execution_id"]: e.data["source"]["key"] for e in fires}
    # and started one execution, created once and completed once, with its record's value
    created = [e for e in events if e.type == n.EXECUTION_CREATED]
    created_per_execution = collections.Counter(e.execution_id for e in created)
    completed_per_execution = collections.Counter(
        e.execution_id for e in events if e.type == n.EXECUTION_COMPLETED)
    numbers = collections.Counter(e.data["context"]["n"] for e in created)
    rejected = [e for e in events if e.type == n.COMMAND_REJECTED]
    record_figures("topic", {
        "records_produced": len(sent), "json_records": len(good),
        "fired_events": len(fires), "distinct_sources": len(per_source),
        "sources_fired_twice": duplicated,
        "executions_started": len(created_per_execution),
        "executions_created_twice": sum(1 for c in created_per_execution.values() if c > 1),
        "executions_completed": len(completed_per_execution),
        "dead_lettered": len(dead), "commands_rejected": len(rejected),
        "elapsed_s": round(elapsed_s, 1),
        "consumer_killed_at_committed_offsets": committed_at_kill,
        "fired_when_processor_killed": fired_at_kill,
        "fired_by_restarted_consumer": restarted_fired,
    })
    assert restarted_fired > 0, "the restarted consumer fired nothing"
    assert len(per_source) == RECORDS
    assert duplicated == 0, "a record fired twice"
    assert len(fires) == RECORDS
    assert set(created_per_execution) == set(execution_of)
    assert set(created_per_execution.values()) == {1}
    assert set(completed_per_execution) == set(execution_of)
    assert set(completed_per_execution.values()) == {1}
    assert set(numbers) == good
    assert set(numbers.values()) == {1}
    # and the records that are not JSON are in the dead-letter topic, once, with the reason
    assert sorted(int(r.key or b"-1") for r in dead) == sorted(
        i for i, _ in sent if i not in good)
    for record in dead:
        assert record.value == b"{broken json"
        reason = (record.header("fm-error") or b"").decode()
        assert reason.startswith(f"topic trigger '{TRIGGER}': the value is not JSON"), reason


def _fired_by(consumer: Proc) -> int:
    """What a stopped consumer process said it fired."""
    for line in reversed(consumer.lines):
        found = re.search(r"stopped; (\d+) records fired", line)
        if found:
            return int(found.group(1))
    raise AssertionError(f"{consumer.name} never said what it fired:\n{consumer.tail()}")
