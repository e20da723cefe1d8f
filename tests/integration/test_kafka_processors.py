"""The Engine on a real Kafka broker: processors in a consumer group.

* flows run end to end on Kafka with exactly-once appends;
* two processor instances in one group split the partitions, and when one leaves,
  the other takes its partitions over and finishes the work: no execution lost, no
  step event twice, every history gapless;
* a garbage record on the commands topic is dead-lettered and the partition keeps
  going; a command for an unknown execution is rejected with a reason.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from flowmonkey import Engine, Result, handler
from flowmonkey.errors import ExecutionNotFoundError
from flowmonkey.events.codec import decode_event
from flowmonkey.events.envelope import Event
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import OutRecord
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.partitioner import partition_for
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult

pytestmark = pytest.mark.integration

PARTITIONS = 4
ENDED = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


@handler("flaky")
async def flaky(params: HandlerParams) -> StepResult:
    if params.attempt == 1:
        return Result.failure("TRANSIENT", "the first attempt always fails")
    return Result.success({"attempt": params.attempt})


@handler("nap")
async def nap(params: HandlerParams) -> StepResult:
    return Result.wait(50, "nap")


FLOW = {
    "id": "kafka-flow", "version": "1", "initialStepId": "a",
    "steps": {
        "a": {"type": "noop", "outputKey": "a", "transitions": {"onSuccess": "b"}},
        "b": {"type": "nap", "transitions": {"onSuccess": "c"}},
        "c": {"type": "flaky", "outputKey": "c", "transitions": {"onSuccess": None},
              "retry": {"maxAttempts": 2, "backoffMs": 20}},
    },
}


def _engine(bootstrap: str, prefix: str, *, exactly_once: bool = True,
            **kwargs: object) -> Engine:
    log = KafkaLog(bootstrap, topic_prefix=prefix, partitions=PARTITIONS,
                   client_id=f"{prefix}client", exactly_once=exactly_once)
    return Engine(flows=[FLOW], handlers=[noop, flaky, nap], log=log,
                  processor_group=f"{prefix}processor", **kwargs)  # type: ignore[arg-type]


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _all_events(engine: Engine) -> list[Event]:
    events: list[Event] = []
    for partition in range(PARTITIONS):
        offset = 0
        while True:
            records = await engine.log.read(engine.topics.events, partition, offset, 5000)
            if not records:
                break
            events.extend(decode_event(r.value) for r in records)
            offset = records[-1].offset + 1
    return events


def _assert_clean_histories(events: list[Event], execution_ids: set[str]) -> None:
    by_execution: dict[str, list[Event]] = collections.defaultdict(list)
    for event in events:
        by_execution[event.execution_id].append(event)
    assert execution_ids <= by_execution.keys()
    for execution_id in execution_ids:
        history = by_execution[execution_id]
        assert [e.seq for e in history] == list(range(1, len(history) + 1)), execution_id
        started = [e.data["attempt_id"] for e in history if e.type == "step.started"]
        assert len(started) == len(set(started)), f"a step started twice in {execution_id}"
        completed = [(e.data["step_id"], e.data["attempt"]) for e in history
                     if e.type == "step.completed"]
        assert len(completed) == len(set(completed)), f"a step attempt twice in {execution_id}"
        assert ("c", 1) in completed
        assert ("c", 2) in completed
        finished = [e for e in history if e.type == "execution.completed"]
        assert len(finished) == 1, execution_id


async def test_flows_run_end_to_end_on_kafka(kafka_bootstrap: str, kafka_prefix: str) -> None:
    async with _engine(kafka_bootstrap, kafka_prefix) as engine:
        assert engine.group_processors is not None
        assert await engine.group_processors.wait_assigned(30)
        assert sorted(p.partition for p in engine.processors) == list(range(PARTITIONS))
        created = await asyncio.gather(*(engine.create("kafka-flow", {"i": i})
                                         for i in range(20)))
        ids = {c.execution.id for c in created}
        finished = await asyncio.gather(*(engine.wait(i, timeout_s=60, until=ENDED) for i in ids))
        assert {e.status for e in finished} == {ExecutionStatus.COMPLETED}
        assert all(e.context["c"] == {"attempt": 2} for e in finished)
        _assert_clean_histories(await _all_events(engine), ids)


async def test_flows_run_end_to_end_at_least_once(kafka_bootstrap: str,
                                                  kafka_prefix: str) -> None:
    # no transactions: records first, the member's offset commit after them
    async with _engine(kafka_bootstrap, kafka_prefix, exactly_once=False) as engine:
        assert engine.group_processors is not None
        assert await engine.group_processors.wait_assigned(30)
        created = await asyncio.gather(*(engine.create("kafka-flow", {"i": i})
                                         for i in range(20)))
        ids = {c.execution.id for c in created}
        finished = await asyncio.gather(*(engine.wait(i, timeout_s=60, until=ENDED)
                                          for i in ids))
        assert {e.status for e in finished} == {ExecutionStatus.COMPLETED}
        _assert_clean_histories(await _all_events(engine), ids)
        group = engine.processor_group
        for partition in range(PARTITIONS):
            # the member committed its progress, so a successor would not start over
            committed = await engine.log.committed(group, engine.topics.commands, partition)
            end = await engine.log.end_offset(engine.topics.commands, partition)
            assert committed == end


async def test_a_second_instance_shares_the_partitions_and_takes_over_when_one_leaves(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    front = _engine(kafka_bootstrap, kafka_prefix)
    helper = _engine(kafka_bootstrap, kafka_prefix, run_projector=False)
    async with front:
        await helper.start()
        try:
            async def split() -> bool:
                mine = {p.partition for p in front.processors}
                theirs = {p.partition for p in helper.processors}
                return bool(mine) and bool(theirs) and not mine & theirs and \
                    len(mine | theirs) == PARTITIONS
            await _until(split, "the group to split the partitions between the two")
            first = await asyncio.gather(*(front.create("kafka-flow", {"i": i})
                                           for i in range(40)))
        finally:
            await helper.stop()  # leaves the group, mid-run for some executions
        await _until(lambda: _owns_all(front), "the remaining instance to own everything")
        second = await asyncio.gather(*(front.create("kafka-flow", {"i": i})
                                        for i in range(40, 60)))
        ids = {c.execution.id for c in first + second}
        finished = await asyncio.gather(*(front.wait(i, timeout_s=90, until=ENDED) for i in ids))
        assert {e.status for e in finished} == {ExecutionStatus.COMPLETED}
        _assert_clean_histories(await _all_events(front), ids)


async def _owns_all(engine: Engine) -> bool:
    return sorted(p.partition for p in engine.processors) == list(range(PARTITIONS))


async def test_garbage_is_dead_lettered_and_unknown_executions_are_rejected(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    async with _engine(kafka_bootstrap, kafka_prefix) as engine:
        assert engine.group_processors is not None
        assert await engine.group_processors.wait_assigned(30)
        await engine.log.append([OutRecord(engine.topics.commands, b"{not json",
                                           key=b"x", partition=0)])
        with pytest.raises(ExecutionNotFoundError, match="no-such-execution"):
            await engine.resume("no-such-execution", "some-token")
        cancelled = await engine.cancel("no-such-execution")
        assert not cancelled.cancelled
        assert "no-such-execution" in (cancelled.reason or "")
        # partition 0 keeps going after the garbage
        created = await asyncio.gather(*(engine.create("kafka-flow", {"i": i})
                                         for i in range(8)))
        finished = await asyncio.gather(*(engine.wait(c.execution.id, timeout_s=60, until=ENDED)
                                          for c in created))
        assert {e.status for e in finished} == {ExecutionStatus.COMPLETED}
        dead = await engine.log.read(engine.topics.dead_letter, 0, 0, 10)
        assert [r.value for r in dead] == [b"{not json"]
        assert dead[0].header("fm-error")


async def test_the_events_topic_keeps_its_records_forever(kafka_bootstrap: str,
                                                          kafka_prefix: str) -> None:
    async with _engine(kafka_bootstrap, kafka_prefix, run_processors=False,
                       run_projector=False) as engine:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, engine.topics.events)])
        finally:
            await admin.close()
    [(_, _, _, _, entries)] = response.resources
    configs = {entry[0]: entry[1] for entry in entries}
    assert configs["retention.ms"] == "-1"
    assert configs["retention.bytes"] == "-1"


async def test_a_fenced_partition_is_dropped_not_fought_for(kafka_bootstrap: str,
                                                             kafka_prefix: str) -> None:
    async with _engine(kafka_bootstrap, kafka_prefix) as engine:
        group = engine.group_processors
        assert group is not None
        assert await group.wait_assigned(30)
        # another instance takes partition 0's writer (as a new owner would after a
        # rebalance this instance missed): this one is now a zombie for partition 0
        zombie_of = f"{engine.processor_group}.{engine.topics.commands}.0"
        assert isinstance(engine.log, KafkaLog)
        usurper = await engine.log.transactional(zombie_of)
        try:
            command_for_0 = next(f"e-{i}" for i in range(1000)
                                 if partition_for(f"e-{i}".encode(), PARTITIONS) == 0)
            await engine.log.publish([OutRecord(
                engine.topics.commands, b'{"not": "a command"}', key=command_for_0.encode())])

            async def dropped() -> bool:
                return 0 not in {p.partition for p in engine.processors}
            await _until(dropped, "the fenced partition to be dropped", 30)
            # it stays dropped (no rebuild is scheduled): reopening the writer would
            # fence the rightful owner
            assert 0 not in group._failures
            assert usurper.usable
            assert 0 not in {p.partition for p in engine.processors}
            assert {p.partition for p in engine.processors} == set(range(1, PARTITIONS))
        finally:
            await usurper.close()
