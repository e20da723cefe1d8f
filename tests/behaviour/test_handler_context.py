"""Handlers start inside the processor's batch (one that finishes without waiting needs
no task of its own), yet each runs in a context of its own: a context variable one
handler sets is not seen by the next, waiting or not."""

from __future__ import annotations

import asyncio
import contextvars

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.model.execution import ExecutionStatus
from tests.behaviour.flows import flow, step

CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("current", default=None)


@handler("mark")
async def mark(params: HandlerParams) -> StepResult:
    before = CURRENT.get()
    CURRENT.set(params.execution.id)
    if params.input.get("wait"):
        await asyncio.sleep(0)
    return Result.success({"before": before, "after": CURRENT.get()})


async def test_a_context_variable_set_by_one_handler_is_not_seen_by_the_next() -> None:
    async with Engine(flows=[flow("m", step("a", "mark", to="b", output_key="a"),
                                  step("b", "mark", output_key="b"))],
                      handlers=[mark]) as engine:
        ids = [(await engine.create("m", {"wait": i % 2 == 0})).execution.id
               for i in range(4)]
        for execution_id in ids:
            done = await engine.wait(execution_id, timeout_s=10)
            assert done.status == ExecutionStatus.COMPLETED
            for key in ("a", "b"):
                # each step saw the default, and its own value after setting it
                assert done.context[key] == {"before": None, "after": execution_id}
