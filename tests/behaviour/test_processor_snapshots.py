"""Processor snapshots (DESIGN §4 "Recovery"): a processor recovers from its newest
snapshot plus the events after it, to exactly the state a full replay gives; a
snapshot it cannot use is ignored and the partition is replayed from offset 0; a
failing snapshot store never stops processing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from flowmonkey import Engine, Result, handler
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.kernel.decide import decide
from flowmonkey.kernel.state import PartitionState
from flowmonkey.log.base import Log, Record
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.runner import StepRunner
from flowmonkey.processors.snapshot_codec import encode_snapshot_state
from flowmonkey.processors.snapshots import Snapshot
from flowmonkey.processors.snapshots_memory import MemorySnapshotStore

EVENTS = "flowmonkey.events"
EVERY = 60


@handler("work")
async def work(params: HandlerParams) -> StepResult:
    return Result.success({"n": params.input})


@handler("approval")
async def approval(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval")


FLOW = {
    "id": "order", "version": "1", "initialStepId": "work",
    "steps": {
        "work": {"type": "work", "outputKey": "work", "transitions": {"onSuccess": "approve"}},
        "approve": {"type": "approval", "transitions": {"onSuccess": None,
                                                          "onResume": "done"}},
        "done": {"type": "work", "outputKey": "done", "transitions": {"onSuccess": None}},
    },
}


class CountingLog:
    """A log that counts the events records read from it."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self.events_read = 0

    async def read(self, topic: str, partition: int, offset: int,
                   max_records: int = 1000) -> list[Record]:
        records = await self._log.read(topic, partition, offset, max_records)
        if topic == EVENTS:
            self.events_read += len(records)
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def _engine(log: Log, store: MemorySnapshotStore | None, **kwargs: Any) -> Engine:
    return Engine(flows=[FLOW], handlers=[work, approval], log=log, snapshots=store,
                  snapshot_every=EVERY, **kwargs)


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _run_orders(engine: Engine, count: int, *, first: int = 0) -> list[str]:
    """Start ``count`` orders (every third with an idempotency key); each rests waiting
    for approval."""
    created = await asyncio.gather(*(
        engine.create("order", {"i": i}, idempotency_key=f"order-{i}" if i % 3 == 0 else None)
        for i in range(first, first + count)))
    ids = [c.execution.id for c in created]
    waiting = await asyncio.gather(*(engine.wait(i) for i in ids))
    assert {e.status for e in waiting} == {ExecutionStatus.WAITING}
    return ids


def _processor(engine: Engine, log: Log, store: MemorySnapshotStore | None) -> PartitionProcessor:
    """A second processor of partition 0 over the engine's log, to recover only."""
    clock = SimulatedClock()
    return PartitionProcessor(0, engine.partitions, log, engine.topics, engine.env,
                              engine.handlers, StepRunner(30_000, clock.now_ms), clock,
                              "snapshot-tests", snapshots=store, snapshot_every=EVERY)


async def _recovered(engine: Engine, store: MemorySnapshotStore | None
                     ) -> tuple[PartitionState, CountingLog, PartitionProcessor]:
    counting = CountingLog(engine.log)
    processor = _processor(engine, cast(Log, counting), store)
    await processor.recover()
    await processor.stop()  # drops the timers and handlers recovery armed
    return processor.state, counting, processor


def _same_state(a: PartitionState, b: PartitionState) -> None:
    assert a.executions == b.executions
    assert a.idempotency == b.idempotency
    assert list(a.seen_commands) == list(b.seen_commands)


async def _snapshot_with_tail(engine: Engine, store: MemorySnapshotStore
                              ) -> tuple[Snapshot, list[str]]:
    """Run orders until a snapshot is saved, then a few more that it does not cover."""
    ids = await _run_orders(engine, 40)
    [live] = engine.processors
    assert live.snapshotter is not None
    await live.snapshotter.wait_saved()
    snapshot = await store.load(EVENTS, 0)
    assert snapshot is not None
    ids += await _run_orders(engine, 5, first=1000)
    await live.snapshotter.wait_saved()
    newest = await store.load(EVENTS, 0)
    assert newest is not None
    assert newest.events_offset < await engine.log.end_offset(EVENTS, 0), "no tail"
    return newest, ids


async def test_recovering_from_a_snapshot_and_its_tail_gives_the_full_replays_state() -> None:
    store = MemorySnapshotStore()
    async with _engine(EmbeddedLog(partitions=1, fsync=False), store) as engine:
        snapshot, _ = await _snapshot_with_tail(engine, store)
        end = await engine.log.end_offset(EVENTS, 0)
        # when one processor recovers from the snapshot and another replays everything
        from_snapshot, snapshot_reads, processor = await _recovered(engine, store)
        replayed, full_reads, _ = await _recovered(engine, None)
        # then both have the live processor's state
        _same_state(from_snapshot, replayed)
        _same_state(from_snapshot, engine.processors[0].state)
        # and the snapshot's processor read only the tail (and the record it anchors on)
        assert full_reads.events_read == end
        assert snapshot_reads.events_read == end - snapshot.events_offset + 1
        assert processor.events_replayed == end - snapshot.events_offset
        assert processor.events_offset == end


async def test_a_restored_processor_still_deduplicates_and_hits_idempotency_keys() -> None:
    store = MemorySnapshotStore()
    async with _engine(EmbeddedLog(partitions=1, fsync=False), store) as engine:
        await _snapshot_with_tail(engine, store)
        state, _, processor = await _recovered(engine, store)
        assert processor.events_replayed < await engine.log.end_offset(EVENTS, 0)
        # a command decided before the snapshot, delivered again, is still a duplicate
        oldest = next(iter(state.seen_commands))
        again = Command(type=n.CMD_START, command_id=oldest, execution_id="new-id",
                        timestamp_ms=engine.clock.now_ms(), data={"flow_id": "order"})
        assert decide(state, again, engine.env).ignored == "duplicate command"
        # and a start with the key of an order from before the snapshot hits it
        duplicate = Command(type=n.CMD_START, command_id="fresh", execution_id="new-id",
                            timestamp_ms=engine.clock.now_ms(),
                            data={"flow_id": "order", "context": {},
                                  "idempotency_key": "order-0"})
        decision = decide(state, duplicate, engine.env)
        assert [e.type for e in decision.events] == [n.IDEMPOTENCY_HIT]
        assert decision.events[0].execution_id == state.idempotency["/order/order-0"][0]


async def test_an_undecodable_snapshot_is_ignored_and_the_partition_replayed(
        caplog: pytest.LogCaptureFixture) -> None:
    store = MemorySnapshotStore()
    async with _engine(EmbeddedLog(partitions=1, fsync=False), None) as engine:
        await _run_orders(engine, 20)
        end = await engine.log.end_offset(EVENTS, 0)
        await store.save(Snapshot(EVENTS, 0, end, b"FMSNAP\x01 garbage"))
        with caplog.at_level(logging.ERROR, "flowmonkey.processor.snapshots"):
            state, reads, processor = await _recovered(engine, store)
        replayed, _, _ = await _recovered(engine, None)
        _same_state(state, replayed)
        assert reads.events_read == end
        assert processor.events_replayed == end
        assert "cannot be decoded" in caplog.text


async def test_a_snapshot_that_does_not_match_the_log_is_ignored(
        caplog: pytest.LogCaptureFixture) -> None:
    # given a well-formed snapshot whose last event is not the log's (the topic was
    # created again, say): it claims an empty partition as of the current end
    store = MemorySnapshotStore()
    async with _engine(EmbeddedLog(partitions=1, fsync=False), None) as engine:
        await _run_orders(engine, 20)
        end = await engine.log.end_offset(EVENTS, 0)
        forged = encode_snapshot_state(PartitionState(), topic=EVENTS, partition=0,
                                       events_offset=end, anchor_crc=12345)
        await store.save(Snapshot(EVENTS, 0, end, forged))
        with caplog.at_level(logging.ERROR, "flowmonkey.processor.snapshots"):
            state, reads, _ = await _recovered(engine, store)
        assert len(state.executions) == 20
        assert reads.events_read == end + 1  # the anchor record, then everything
        assert "is not the one it was taken after" in caplog.text


class FailingStore(MemorySnapshotStore):
    async def load(self, topic: str, partition: int) -> Snapshot | None:
        raise OSError("the database is down")

    async def save(self, snapshot: Snapshot) -> None:
        raise OSError("the database is down")


async def test_a_failing_snapshot_store_never_stops_processing(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "flowmonkey.processor.snapshots"):
        async with _engine(EmbeddedLog(partitions=1, fsync=False), FailingStore()) as engine:
            ids = await _run_orders(engine, 40)
            [processor] = engine.processors
            assert processor.snapshotter is not None
            await processor.snapshotter.wait_saved()
            assert processor.snapshotter.saved == 0
            assert processor.failed is None
            first = await engine.get(ids[0])
            assert first is not None
            assert first.resume_token is not None
            done = await engine.resume(ids[0], first.resume_token, {"ok": True})
            assert done.id == ids[0]
    assert "cannot be loaded" in caplog.text
    assert "was not saved" in caplog.text


async def test_snapshot_every_zero_saves_none_but_still_recovers_from_one() -> None:
    store = MemorySnapshotStore()
    log = EmbeddedLog(partitions=1, fsync=False)
    async with Engine(flows=[FLOW], handlers=[work, approval], log=log, snapshots=store,
                      snapshot_every=0) as engine:
        await _run_orders(engine, 40)
        assert engine.processors[0].snapshotter is None
        assert await store.load(EVENTS, 0) is None


async def test_a_restarted_engine_resumes_its_executions_from_the_snapshot(
        tmp_path: Path) -> None:
    # given an engine on a durable log whose orders wait for approval, stopped after
    # a snapshot and a few more orders
    store = MemorySnapshotStore()
    async with _engine(EmbeddedLog(tmp_path, partitions=1, fsync=False), store) as first:
        snapshot, ids = await _snapshot_with_tail(first, store)
        tokens = {}
        for execution_id in ids:
            execution = await first.get(execution_id)
            assert execution is not None
            assert execution.resume_token is not None
            tokens[execution_id] = execution.resume_token
    # when a new engine starts on the same log and store
    async with _engine(EmbeddedLog(tmp_path, partitions=1, fsync=False), store) as second:
        [processor] = second.processors
        end = await second.log.end_offset(EVENTS, 0)
        assert processor.events_replayed < end
        assert (await store.load(EVENTS, 0)) == snapshot
        # then its orders resume and finish
        await asyncio.gather(*(second.resume(i, t, {"ok": True}) for i, t in tokens.items()))
        done = await asyncio.gather(*(second.wait(i) for i in ids))
        assert {e.status for e in done} == {ExecutionStatus.COMPLETED}
        assert all("done" in e.context for e in done)
        # and the idempotency keys of orders from before the snapshot still hit
        again = await second.create("order", {}, idempotency_key="order-0")
        assert again.idempotency_hit
        assert again.execution.id == ids[0]
