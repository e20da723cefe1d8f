"""Processor snapshots on real Kafka and Postgres: an Engine whose processors keep
snapshots in Postgres, restarted, recovers each partition from its snapshot plus the
events after it (Kafka offsets are not dense: transaction markers take some) to the
state a full replay gives, and its unfinished executions resume and finish."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from flowmonkey import Engine, Result, handler
from flowmonkey.events.codec import decode_event
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.runner import StepRunner
from flowmonkey.processors.snapshots_postgres import PostgresSnapshotStore

pytestmark = pytest.mark.integration

PARTITIONS = 2
EVERY = 40


@handler("work")
async def work(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


@handler("approval")
async def approval(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval")


FLOW = {
    "id": "approve", "version": "1", "initialStepId": "a",
    "steps": {
        "a": {"type": "work", "outputKey": "a", "transitions": {"onSuccess": "b"}},
        "b": {"type": "approval", "transitions": {"onSuccess": None, "onResume": "c"}},
        "c": {"type": "work", "outputKey": "c", "transitions": {"onSuccess": None}},
    },
}


def _engine(bootstrap: str, prefix: str, pg: tuple[str, str]) -> Engine:
    dsn, schema = pg
    log = KafkaLog(bootstrap, topic_prefix=prefix, partitions=PARTITIONS,
                   client_id=f"{prefix}client")
    return Engine(flows=[FLOW], handlers=[work, approval], log=log,
                  processor_group=f"{prefix}processor",
                  snapshots=PostgresSnapshotStore(dsn, schema), snapshot_every=EVERY)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _create(engine: Engine, count: int, first: int) -> dict[str, str]:
    """``count`` executions resting at the approval step: id -> resume token."""
    created = await asyncio.gather(*(
        engine.create("approve", {"i": i}, idempotency_key=f"k{i}")
        for i in range(first, first + count)))
    waiting = await asyncio.gather(*(engine.wait(c.execution.id, timeout_s=60)
                                     for c in created))
    assert {e.status for e in waiting} == {ExecutionStatus.WAITING}
    tokens: dict[str, str] = {}
    for execution in waiting:
        assert execution.resume_token is not None
        tokens[execution.id] = execution.resume_token
    return tokens


async def test_a_restarted_engine_recovers_from_postgres_snapshots_and_finishes_the_work(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str]) -> None:
    # given an engine whose partitions were snapshotted, then grew a tail
    async with _engine(kafka_bootstrap, kafka_prefix, pg_schema) as first:
        assert first.group_processors is not None
        assert await first.group_processors.wait_assigned(30)
        tokens = await _create(first, 60, 0)
        for processor in first.processors:
            assert processor.snapshotter is not None
            await processor.snapshotter.wait_saved()
        store = first.snapshots
        assert store is not None

        async def snapshotted() -> bool:
            loaded = [await store.load(first.topics.events, p) for p in range(PARTITIONS)]
            return all(s is not None for s in loaded)
        await _until(snapshotted, "a snapshot of every partition")
        tokens |= await _create(first, 6, 1000)
    ids = list(tokens)

    # when a new engine starts on the same topics and schema
    async with _engine(kafka_bootstrap, kafka_prefix, pg_schema) as second:
        assert second.group_processors is not None
        assert await second.group_processors.wait_assigned(30)
        await _until(lambda: _owns_all(second), "the processors to take every partition")
        for processor in second.processors:
            end = await second.log.end_offset(second.topics.events, processor.partition)
            # then each partition started from its snapshot and replayed only the records
            # after it (fewer than the offsets: transaction markers take some)
            assert processor.snapshotter is not None
            covered = processor.snapshotter.snapshot_offset
            assert covered > 0, processor.partition
            assert processor.events_replayed <= end - covered
            # to the state a full replay of the log gives
            replayed = await _full_replay(second, processor.partition)
            assert processor.state.executions == replayed.state.executions
            assert processor.state.idempotency == replayed.state.idempotency
            assert list(processor.state.seen_commands) == \
                list(replayed.state.seen_commands)
        # and the executions resume and finish, once each
        await asyncio.gather(*(second.resume(i, t, {"ok": True}) for i, t in tokens.items()))
        done = await asyncio.gather(*(second.wait(i, timeout_s=60,
                                                  until=[ExecutionStatus.COMPLETED])
                                      for i in ids))
        assert {e.status for e in done} == {ExecutionStatus.COMPLETED}
        assert all(e.context["c"] == {"step": "c"} for e in done)
        again = await second.create("approve", {}, idempotency_key="k0")
        assert again.idempotency_hit
        await _assert_gapless(second, set(ids))


async def _owns_all(engine: Engine) -> bool:
    return sorted(p.partition for p in engine.processors) == list(range(PARTITIONS))


async def _full_replay(engine: Engine, partition: int) -> PartitionProcessor:
    clock = SimulatedClock()
    processor = PartitionProcessor(partition, PARTITIONS, engine.log, engine.topics,
                                   engine.env, engine.handlers,
                                   StepRunner(30_000, clock.now_ms), clock,
                                   engine.processor_group)
    await processor.recover()
    await processor.stop()
    assert processor.events_replayed > 0
    return processor


async def _assert_gapless(engine: Engine, ids: set[str]) -> None:
    seqs: dict[str, list[int]] = {}
    completed: dict[str, list[Any]] = {}
    for partition in range(PARTITIONS):
        offset = 0
        while records := await engine.log.read(engine.topics.events, partition, offset, 5000):
            for record in records:
                event = decode_event(record.value)
                if event.seq > 0:
                    seqs.setdefault(event.execution_id, []).append(event.seq)
                if event.type == "step.completed":
                    completed.setdefault(event.execution_id, []).append(event.data["step_id"])
            offset = records[-1].offset + 1
    for execution_id in ids:
        assert seqs[execution_id] == list(range(1, len(seqs[execution_id]) + 1))
        assert sorted(completed[execution_id]) == ["a", "b", "c"], execution_id
