"""Waiting: for a duration, until a time, or for a signal with a resume token.

``Result.wait(ms)`` and ``Result.wait_until(when)`` park the execution on a durable
timer; ``Result.wait_for_signal(reason)`` parks it until someone calls
``engine.resume(execution_id, resume_token, data)``. The data is stored at the
waiting step's ``outputKey`` and the flow continues at ``onResume`` (or
``onSuccess``). A token works once; a used, expired or wrong token is refused with
``ResumeTokenError``. ``timeout_ms`` on a signal wait makes its token expire.

Run: python examples/06_wait_and_resume.py
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from flowmonkey import HandlerParams, Result, ResumeTokenError, StepResult, handler
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("cool-down")
async def cool_down(params: HandlerParams) -> StepResult:
    return Result.wait(60_000, "cool down for a minute")


@handler("until-next-hour")
async def until_next_hour(params: HandlerParams) -> StepResult:
    now = params.execution.updated_at
    return Result.wait_until(now + timedelta(hours=1), "wait an hour")


@handler("approval")
async def approval(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("manager approval", timeout_ms=24 * 3_600_000)


@handler("decide")
async def decide(params: HandlerParams) -> StepResult:
    approved = params.context["approval"]["approved"]
    return Result.success("shipped" if approved else "rejected")


FLOW = {
    "id": "approve", "version": "1.0.0", "initialStepId": "cool-down",
    "steps": {
        "cool-down": {"id": "cool-down", "type": "cool-down",
                      "transitions": {"onSuccess": "hour"}},
        "hour": {"id": "hour", "type": "until-next-hour", "transitions": {"onSuccess": "ask"}},
        "ask": {"id": "ask", "type": "approval", "outputKey": "approval",
                "transitions": {"onResume": "decide"}},
        "decide": {"id": "decide", "type": "decide", "outputKey": "outcome",
                   "transitions": {"onSuccess": None}},
    },
}


async def main() -> None:
    handlers = [cool_down, until_next_hour, approval, decide]
    async with TestHarness(handlers=handlers, flows=[FLOW]) as t:
        r = await t.run("approve", {"order": "A-1"})
        ex = r.execution
        waited = ex.updated_at - ex.created_at
        print(f"{ex.status.value} at {ex.current_step_id!r} ({ex.wait_reason}) after "
              f"{waited} of simulated time")
        check(ex.status.value == "waiting" and ex.resume_token is not None, "signal wait")
        check(waited >= timedelta(hours=1, minutes=1), "timed waits passed")
        token = ex.resume_token
        assert token is not None
        try:
            await t.resume(ex.id, "not-the-token", {"approved": True})
            check(False, "a wrong token must be refused")
        except ResumeTokenError as exc:
            print(f"wrong token refused: {exc.code}")
        done = await t.resume(ex.id, token, {"approved": True, "by": "grace"})
        print(f"resumed -> {done.status.value}, context {done.context}")
        t.assert_completed(done)
        t.assert_context(done, {"outcome": "shipped",
                                "approval": {"approved": True, "by": "grace"}})
        try:
            await t.resume(ex.id, token, {"approved": False})
            check(False, "a used token must be refused")
        except ResumeTokenError as exc:
            print(f"token reuse refused: {exc.code}")
    print("wait and resume OK")


if __name__ == "__main__":
    asyncio.run(main())
