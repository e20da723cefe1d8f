"""Timeouts: handler timeouts, execution timeouts and wait timeouts.

* A handler runs under a time limit: the step's ``timeoutMs``, else the engine's
  ``timeout_ms`` (30 s by default). When it runs out, the step fails with
  ``HANDLER_TIMEOUT`` (retryable like any failure): the handler's coroutine is
  cancelled (clean up in ``except asyncio.CancelledError``) and its ``abort``
  event is set.
* ``timeout={"executionTimeoutMs": ...}`` bounds an execution's whole life, and
  ``waitTimeoutMs`` bounds any single wait; either ends the execution by
  cancellation with source ``timeout``.

Handler timeouts are measured on the wall clock; execution and wait timeouts are
timers, so the TestHarness's simulated clock reaches them at once.

Run: python examples/10_timeouts.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


CANCELLED: list[str] = []


@handler("slow")
async def slow(params: HandlerParams) -> StepResult:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        CANCELLED.append(params.step.id)  # clean up here, then let it propagate
        raise
    return Result.success("too late")


@handler("approval")
async def approval(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval that never comes")


SLOW = {"id": "slow", "version": "1.0.0", "initialStepId": "work",
        "steps": {"work": {"id": "work", "type": "slow", "timeoutMs": 100,
                           "transitions": {"onSuccess": None}}}}
WAITS = {"id": "waits", "version": "1.0.0", "initialStepId": "ask",
         "steps": {"ask": {"id": "ask", "type": "approval", "transitions": {"onSuccess": None}}}}


async def main() -> None:
    async with TestHarness(handlers=[slow, approval], flows=[SLOW, WAITS]) as t:
        r = await t.run("slow", {})
        timeouts = [e for e in r.events if e.type == "step.timeout"]
        error = r.execution.error
        assert error is not None
        print(f"handler timeout: {r.execution.status.value} {error.code} ({error.message}); "
              f"handler cancelled at: {CANCELLED}")
        t.assert_failed(r.execution, "HANDLER_TIMEOUT")
        check(len(timeouts) == 1 and CANCELLED == ["work"], "one step.timeout, handler cancelled")

        for name, timeout in [("execution", {"executionTimeoutMs": 60_000}),
                              ("wait", {"waitTimeoutMs": 5_000})]:
            r = await t.run("waits", {}, timeout=timeout)
            check(r.execution.status.value == "waiting", "waiting for approval")
            await t.advance(61_000)
            ex = await t.get(r.execution.id)
            assert ex is not None
            assert ex.cancellation is not None
            print(f"{name} timeout: {ex.status.value} by {ex.cancellation.source} "
                  f"({ex.cancellation.reason})")
            t.assert_cancelled(ex)
            check(ex.cancellation.source == "timeout", "cancelled by timeout")
    print("timeouts OK")


if __name__ == "__main__":
    asyncio.run(main())
