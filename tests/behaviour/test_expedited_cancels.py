"""Cancels decided ahead of the backlog (``PartitionProcessor.expedite``) change
nothing the log does not justify: a cascade cancel reaches a child's processor only
once the parent's decision is in the log; a cancel that arrives before its
execution's start is decided right after that start, before any handler runs; and
one whose copy on the log was decided first (or that waited too long) is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from flowmonkey import Engine, ExecutionStatus, HandlerParams, Result, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_event, encode_command
from flowmonkey.events.envelope import Command, trusted_command
from flowmonkey.kernel import state as state_module
from flowmonkey.log import EmbeddedLog, OutRecord
from flowmonkey.log.base import Position
from flowmonkey.log.partitioner import partition_for
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.early_cancels import EARLY_CANCEL_TTL_MS
from flowmonkey.processors.partition import PartitionProcessor
from tests.behaviour.flows import flow, step
from tests.unit.api_support import eventually

ENDED = {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}

calls: list[str] = []


@handler("side-effect")
async def side_effect(p: HandlerParams) -> StepResult:
    calls.append(p.execution.id)
    await asyncio.sleep(0.05)
    return Result.success({"done": True})


@handler("park")
async def park(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("parked until cancelled")


HANDLERS = [side_effect, park]
EFFECT = flow("effect", step("a", "side-effect", output_key="a"))
PARENT = flow("parent", step("call", "sub-flow", config={"flowId": "parked"}))
PARKED = flow("parked", step("wait", "park"))
FLOWS = [EFFECT, PARENT, PARKED]


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    calls.clear()


def _start(engine: Engine, execution_id: str, command_id: str) -> Command:
    return trusted_command(n.CMD_START, command_id, execution_id, engine.clock.now_ms(),
                           {"flow_id": "effect", "context": {}, "options": {}}, None)


def _cancel(engine: Engine, execution_id: str, command_id: str) -> Command:
    return trusted_command(n.CMD_CANCEL, command_id, execution_id, engine.clock.now_ms(),
                           {"source": "user"}, None)


async def _publish(engine: Engine, *commands: Command) -> None:
    await engine.log.publish([
        OutRecord(engine.topics.commands, encode_command(c), key=c.execution_id.encode())
        for c in commands])


async def _ended(engine: Engine, execution_id: str) -> Any:
    async def ended() -> Any:
        execution = await engine.get(execution_id)
        return execution if execution is not None and execution.status in ENDED else None
    return await eventually(ended, what=f"{execution_id} to end")


async def test_an_execution_cancelled_before_its_start_is_decided_runs_no_handler() -> None:
    async with Engine(flows=FLOWS, handlers=HANDLERS,
                      log=EmbeddedLog(partitions=1)) as engine:
        processor = engine.processors[0]
        # the cancel is expedited while the start is still queued (as behind a backlog);
        # the start is the last command of its batch
        processor.expedite(_cancel(engine, "x1", "cancel-x1"))
        processor.submit(_start(engine, "x1", "start-x1"))

        ended = await _ended(engine, "x1")

        assert ended.status == ExecutionStatus.CANCELLED
        assert calls == []  # cancelled before its first handler ran
        assert not processor._early_cancels
        assert engine.processor_failure() is None


class _FencedWriter:
    """A partition's writer whose appends fail, as a fenced Kafka transaction does."""

    def __init__(self) -> None:
        self.refused = 0

    async def append(self, records: Sequence[OutRecord], *, commit_group: str | None = None,
                     commit_offsets: Mapping[tuple[str, int], int] | None = None,
                     ) -> list[Position]:
        self.refused += 1
        raise RuntimeError("injected: the partition's transaction was fenced")


async def test_a_cascade_cancel_reaches_no_child_before_the_parents_decision_is_in_the_log(
) -> None:
    partitions = 4
    async with Engine(flows=FLOWS, handlers=HANDLERS,
                      log=EmbeddedLog(partitions=partitions)) as engine:
        parent_id = child_id = ""
        for _ in range(50):  # a parent and its child on different partitions
            created = await engine.create("parent")
            parent_id = created.execution.id

            async def child_parked(parent_id: str = parent_id) -> str | None:
                page = await engine.list(limit=1000)
                return next((e.id for e in page.items if e.parent_execution_id == parent_id
                             and e.status == ExecutionStatus.WAITING), None)
            child_id = await eventually(child_parked, what="the child to park")
            if partition_for(parent_id.encode(), partitions) != \
                    partition_for(child_id.encode(), partitions):
                break
        by_partition = {p.partition: p for p in engine.processors}
        parent_processor = by_partition[partition_for(parent_id.encode(), partitions)]
        child_partition = partition_for(child_id.encode(), partitions)
        child_processor = by_partition[child_partition]
        assert parent_processor is not child_processor
        child_events = await engine.log.end_offset(engine.topics.events, child_partition)
        fenced = _FencedWriter()
        parent_processor.writer = fenced

        cancel = asyncio.create_task(engine.cancel(parent_id))

        async def parent_stopped() -> bool:
            return parent_processor.failed is not None and child_processor.idle
        await eventually(parent_stopped, what="the parent's partition to stop")
        assert fenced.refused >= 1
        child = child_processor.execution_state(child_id)
        assert child is not None
        assert child.status == ExecutionStatus.WAITING  # not cancelled by a lost decision
        written = await engine.log.read(engine.topics.events, child_partition,
                                        child_events, 100)
        assert [decode_event(r.value).type for r in written] == []
        cancel.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancel


async def test_an_early_cancel_whose_copy_on_the_log_was_decided_cancels_no_later_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a small window of remembered command ids, so the cancel's leaves it quickly
    monkeypatch.setattr(state_module, "SEEN_COMMANDS_KEPT", 3)
    async with Engine(flows=FLOWS, handlers=HANDLERS,
                      log=EmbeddedLog(partitions=1)) as engine:
        processor = engine.processors[0]
        cancel = _cancel(engine, "x2", "cancel-x2")
        processor.expedite(cancel)  # no start of x2 yet: it waits for one

        async def waiting() -> bool:
            return "x2" in processor._early_cancels
        await eventually(waiting, what="the early cancel to wait for its start")
        others = [_cancel(engine, f"nobody-{i}", f"cancel-nobody-{i}") for i in range(5)]
        await _publish(engine, cancel, *others)  # rejected: nothing to cancel

        async def decided() -> bool:
            seen = processor.state.seen_commands
            return "cancel-nobody-4" in seen and "cancel-x2" not in seen
        await eventually(decided, what="the cancels decided and the first forgotten")
        assert not processor._early_cancels  # dropped once its copy was decided
        await _publish(engine, _start(engine, "x2", "start-x2"))

        ended = await _ended(engine, "x2")

        assert ended.error is None, ended.error
        assert ended.status == ExecutionStatus.COMPLETED
        assert calls == ["x2"]
        assert engine.processor_failure() is None


async def test_an_early_cancel_already_decided_from_the_log_is_not_kept() -> None:
    async with Engine(flows=FLOWS, handlers=HANDLERS,
                      log=EmbeddedLog(partitions=1)) as engine:
        processor = engine.processors[0]
        cancel = _cancel(engine, "x3", "cancel-x3")
        await _publish(engine, cancel)

        async def decided() -> bool:
            return "cancel-x3" in processor.state.seen_commands
        await eventually(decided, what="the cancel's copy on the log decided")
        processor.expedite(cancel)  # handed over late (as after a slow publish)

        async def taken() -> bool:
            return not processor._urgent
        await eventually(taken, what="the expedited cancel taken")
        assert not processor._early_cancels


async def test_an_early_cancel_is_dropped_after_it_waited_too_long() -> None:
    clock = SimulatedClock()
    async with Engine(flows=FLOWS, handlers=HANDLERS, clock=clock,
                      log=EmbeddedLog(partitions=1)) as engine:
        processor: PartitionProcessor = engine.processors[0]
        processor.expedite(_cancel(engine, "x4", "cancel-x4"))  # its copy is never decided here

        async def waiting() -> bool:
            return "x4" in processor._early_cancels
        await eventually(waiting, what="the early cancel to wait for its start")
        clock.advance(EARLY_CANCEL_TTL_MS + 1)
        processor.submit(_start(engine, "x4", "start-x4"))

        async def ran() -> bool:
            state = processor.execution_state("x4")
            return state is not None and state.status == ExecutionStatus.COMPLETED
        await eventually(ran, what="x4 to complete")
        assert calls == ["x4"]
        assert not processor._early_cancels
