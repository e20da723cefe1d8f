"""Events produced by real runs (timeouts, idempotency, children) match their schemas."""

from __future__ import annotations

import asyncio

from flowmonkey import EngineOptions, Result, handler
from flowmonkey.events.types import EVENT_SCHEMAS, payload
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.model.result import StepResult
from flowmonkey.testing import TestHarness


@handler("slow")
async def slow(params: HandlerParams) -> StepResult:
    await asyncio.sleep(5)
    return Result.success()


@handler("ok")
async def ok(params: HandlerParams) -> StepResult:
    return Result.success({"fine": True})


CHILD = {"id": "child", "initialStepId": "a",
         "steps": {"a": {"type": "ok", "outputKey": "a"}}}
PARENT = {"id": "parent", "initialStepId": "spawn",
          "steps": {"spawn": {"type": "sub-flow", "config": {"flowId": "child"},
                              "outputKey": "child", "transitions": {"onSuccess": "slow"}},
                    "slow": {"type": "slow"}}}


async def test_events_of_timeouts_idempotency_and_children_match_their_schemas() -> None:
    # given a parent that starts a child and then times out in a slow step
    async with TestHarness(handlers=[slow, ok], flows=[CHILD, PARENT],
                           options=EngineOptions(timeout_ms=50, record_history=True)) as t:
        # when it runs twice with the same idempotency key
        first = await t.run("parent", {}, idempotency_key="k")
        await t.run("parent", {}, idempotency_key="k")
        t.assert_failed(first.execution, "HANDLER_TIMEOUT")
        # then every event it produced validates against its registered schema
        seen = set()
        for event in t.events:
            if (event.type, event.version) in EVENT_SCHEMAS:
                payload(event)
                seen.add(event.type)
        assert {"step.timeout", "idempotency.hit", "child.started", "child.finished",
                "execution.resumed", "execution.failed"} <= seen
