"""A processor with ``interleave`` lets the event loop run between the batches of a
backlog (so a Kafka transaction in flight moves on); without it, it decides the whole
backlog in one go."""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey import Engine, Result, handler
from flowmonkey.events import names as n
from flowmonkey.events.envelope import trusted_command
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.result import StepResult
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.runner import StepRunner


@handler("rest")
async def rest(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("later")


FLOW = {"id": "one", "version": "1", "initialStepId": "a",
        "steps": {"a": {"type": "rest", "transitions": {"onSuccess": None}}}}


# after the first batch of two: four starts left, plus the two handlers' results (the
# handler returns at once, so its result is queued as the batch ends)
@pytest.mark.parametrize(("interleave", "left_when_others_ran"), [(True, 6), (False, 0)])
async def test_a_backlog_is_decided_in_batches_with_the_loop_running_between_them(
        interleave: bool, left_when_others_ran: int) -> None:
    log = EmbeddedLog(partitions=1)
    async with Engine(flows=[FLOW], handlers=[rest], log=log, run_processors=False) as engine:
        clock = SimulatedClock()
        processor = PartitionProcessor(
            0, 1, log, engine.topics, engine.env, engine.handlers,
            StepRunner(30_000, clock.now_ms), clock, "interleave-test", max_batch=2,
            pull_commands=False, interleave=interleave)
        await processor.start()
        try:
            for i in range(6):
                processor.submit(trusted_command(
                    n.CMD_START, f"start-{i}", f"e{i}", clock.now_ms(),
                    {"flow_id": "one", "context": {}}, None))
            seen: list[int] = []

            async def other_work() -> None:
                seen.append(len(processor._inbox))

            await asyncio.create_task(other_work())

            # the first batch of two was decided before anything else ran; with
            # interleave the other task ran right after it, else after all six
            assert seen == [left_when_others_ran]
            for _ in range(100):
                if len(processor.state.executions) == 6:
                    break
                await asyncio.sleep(0)
            assert len(processor.state.executions) == 6
        finally:
            await processor.stop()
