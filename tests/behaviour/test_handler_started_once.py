"""An attempt's handler runs once, even when a batch that touches its execution comes
between the handler's result and the batch that decides it.

A handler that finishes without waiting queues its result at the end of the inbox; a
command already queued for the same execution (here a duplicate start, ignored but
still touching the execution) is decided first, in a batch of its own. That batch must
not see the attempt as not running and start the handler again.
"""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey import Engine, Result, handler
from flowmonkey.events import names as n
from flowmonkey.events.envelope import trusted_command
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.runner import StepRunner

CALLS: list[str] = []


@handler("count")
async def count(params: HandlerParams) -> StepResult:
    CALLS.append(params.attempt_id)
    return Result.success({"n": len(CALLS)})


FLOW = {"id": "once", "version": "1", "initialStepId": "a",
        "steps": {"a": {"type": "count", "transitions": {"onSuccess": None}}}}


@pytest.mark.parametrize("max_batch", [1, 2, 1024])
async def test_a_handler_is_not_started_again_while_its_result_waits(max_batch: int) -> None:
    CALLS.clear()
    log = EmbeddedLog(partitions=1)
    async with Engine(flows=[FLOW], handlers=[count], log=log, run_processors=False) as engine:
        clock = SimulatedClock()
        processor = PartitionProcessor(
            0, 1, log, engine.topics, engine.env, engine.handlers,
            StepRunner(30_000, clock.now_ms), clock, "once-test", max_batch=max_batch,
            pull_commands=False, interleave=True)
        await processor.start()
        try:
            start = trusted_command(n.CMD_START, "start-1", "e1", clock.now_ms(),
                                    {"flow_id": "once", "context": {}}, None)
            processor.submit(start)
            processor.submit(start)  # a duplicate: ignored, yet it touches e1
            for _ in range(200):
                state = processor.state.executions.get("e1")
                if state is not None and state.status == ExecutionStatus.COMPLETED:
                    break
                await asyncio.sleep(0)
            state = processor.state.executions.get("e1")
            assert state is not None
            assert state.status == ExecutionStatus.COMPLETED
            assert len(CALLS) == 1, CALLS
        finally:
            await processor.stop()
