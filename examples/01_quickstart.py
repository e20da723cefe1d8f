"""Quickstart: define handlers and a flow, run it, look at the result.

A flow is a set of steps; each step names a handler type, how its input is taken from
the execution's context (an input selector), where its output goes (``outputKey``)
and where to go next (``transitions``; ``None`` ends the flow). Flows can be written
as Python dicts in the original FlowMonkey's camelCase JSON, or as ``Flow`` models.

The TestHarness runs flows in-process on an in-memory embedded log with a simulated
clock: ideal for tests and for trying things out.

Run: python examples/01_quickstart.py
"""

from __future__ import annotations

import asyncio

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness


@handler("greet", description="Build a greeting for a name.")
async def greet(params: HandlerParams) -> StepResult:
    return Result.success({"message": f"Hello, {params.input}!"})


@handler("shout")
async def shout(params: HandlerParams) -> StepResult:
    return Result.success(params.input["message"].upper())


FLOW = {
    "id": "hello",
    "version": "1.0.0",
    "initialStepId": "greet",
    "steps": {
        "greet": {
            "id": "greet", "type": "greet",
            "input": {"type": "path", "path": "user.name"},
            "outputKey": "greeting",
            "transitions": {"onSuccess": "shout"},
        },
        "shout": {
            "id": "shout", "type": "shout",
            "input": {"type": "key", "key": "greeting"},
            "outputKey": "loud",
            "transitions": {"onSuccess": None},
        },
    },
}


async def main() -> None:
    async with TestHarness(handlers=[greet, shout], flows=[FLOW]) as t:
        result = await t.run("hello", {"user": {"name": "Ada"}})
        execution = result.execution
        print(f"status:  {execution.status.value}")
        print(f"context: {execution.context}")
        print(f"events:  {[e.type for e in result.events]}")
        print(f"history: {[(h.step_id, h.outcome) for h in execution.history]}")
        t.assert_completed(execution)
        t.assert_context(execution, {"loud": "HELLO, ADA!"})
        if execution.step_count != 2:
            raise SystemExit(f"expected 2 steps, got {execution.step_count}")
    print("quickstart OK")


if __name__ == "__main__":
    asyncio.run(main())
