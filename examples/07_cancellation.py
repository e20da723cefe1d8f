"""Cancellation: stop a pending, running or waiting execution.

``engine.cancel(execution_id, source="user", reason=...)`` moves the execution
through ``cancelling`` to ``cancelled``, invalidates its resume tokens and cascades
to its children (source ``parent``). The result reports ``tokens_invalidated`` and
``children_cancelled``. Cancelling an execution that already ended changes nothing
and says why.

Run: python examples/07_cancellation.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import HandlerParams, Result, ResumeTokenError, StepResult, handler
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("await-signal")
async def await_signal(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("waiting for a human")


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success("done")


CHILD = {"id": "child", "version": "1.0.0", "initialStepId": "wait",
         "steps": {"wait": {"id": "wait", "type": "await-signal",
                            "transitions": {"onSuccess": None}}}}
PARENT = {"id": "parent", "version": "1.0.0", "initialStepId": "spawn",
          "steps": {"spawn": {"id": "spawn", "type": "sub-flow",
                              "config": {"flowId": "child"}, "input": {"type": "full"},
                              "transitions": {"onSuccess": None}}}}
QUICK = {"id": "quick", "version": "1.0.0", "initialStepId": "go",
         "steps": {"go": {"id": "go", "type": "noop", "transitions": {"onSuccess": None}}}}


async def main() -> None:
    async with TestHarness(handlers=[await_signal, noop], flows=[CHILD, PARENT, QUICK]) as t:
        # a waiting execution: its token is invalidated
        r = await t.run("child", {})
        token = r.execution.resume_token
        assert token is not None
        res = await t.cancel(r.execution.id, source="user", reason="customer changed mind")
        ex = await t.get(r.execution.id)
        assert ex is not None
        assert ex.cancellation is not None
        print(f"cancelled={res.cancelled} tokens_invalidated={res.tokens_invalidated} "
              f"status={ex.status.value} source={ex.cancellation.source} "
              f"reason={ex.cancellation.reason!r}")
        t.assert_cancelled(ex)
        check(res.tokens_invalidated == 1, "one token invalidated")
        try:
            await t.resume(ex.id, token, {})
            check(False, "the token of a cancelled execution must be refused")
        except ResumeTokenError as exc:
            print(f"resume after cancel refused: {exc.code}")

        # a parent waiting for its child: the cancel cascades
        r = await t.run("parent", {})
        check(r.execution.status.value == "waiting", "parent waits for its child")
        res = await t.cancel(r.execution.id, reason="shutting down")
        children = (await t.engine.list(parent_execution_id=r.execution.id)).items
        print(f"parent cancelled={res.cancelled} children_cancelled={res.children_cancelled} "
              f"child status={[c.status.value for c in children]}")
        check(res.children_cancelled == 1, "one child cancelled")
        check([c.status.value for c in children] == ["cancelled"], "child cancelled")
        child = children[0]
        check(child.cancellation is not None and child.cancellation.source == "parent",
              "child cancelled by its parent")

        # an execution that already completed cannot be cancelled
        r = await t.run("quick", {})
        res = await t.cancel(r.execution.id)
        print(f"completed execution: cancelled={res.cancelled} ({res.reason})")
        check(not res.cancelled, "a completed execution stays completed")
    print("cancellation OK")


if __name__ == "__main__":
    asyncio.run(main())
