"""Durable executions: stop the engine mid-wait, reopen the log, and carry on.

``EmbeddedLog(path=...)`` keeps the log in segment files (fsync on commit). Every
state change of an execution is an event in that log, and waits are timers recorded
there too, so a new engine on the same directory picks up where the old one
stopped: executions waiting for a signal can be resumed, and timers that fell due
while nothing was running fire at once. This is what ``flowmonkey dev`` does.

Run: python examples/14_durable_restart.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from typing import Any

from flowmonkey import Engine, ExecutionStatus, HandlerParams, Result, StepResult, handler
from flowmonkey.handlers import builtin
from flowmonkey.log import EmbeddedLog


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("approval")
async def approval(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("waiting for approval")


FLOW: dict[str, Any] = {
    "id": "approve-then-nap", "version": "1.0.0", "initialStepId": "ask",
    "steps": {
        "ask": {"id": "ask", "type": "approval", "outputKey": "approval",
                "transitions": {"onSuccess": "nap"}},
        "nap": {"id": "nap", "type": "delay", "config": {"ms": 600},
                "transitions": {"onSuccess": "done"}},
        "done": {"id": "done", "type": "transform", "config": {"expression": "'finished'"},
                 "outputKey": "result", "transitions": {"onSuccess": None}},
    },
}
ENDED = {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}


def open_engine(path: str) -> Engine:
    """A fresh engine on the data directory, as a restarted process would build it."""
    return Engine(flows=[FLOW], handlers=[*builtin(), approval], log=EmbeddedLog(path=path))


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="flowmonkey-") as path:
        async with open_engine(path) as engine:  # 1st run: start, wait for a signal
            created = await engine.create("approve-then-nap", {"request": "day off"})
            ex = await engine.wait(created.execution.id)
            token = ex.resume_token
            print(f"run 1: {ex.status.value} at {ex.current_step_id!r}; engine stops")
            check(ex.status == ExecutionStatus.WAITING and token is not None, "signal wait")
        assert token is not None

        async with open_engine(path) as engine:  # 2nd run: resume, stop mid-delay
            ex = await engine.wait(created.execution.id)
            print(f"run 2: reopened, still {ex.status.value}; resuming with the token")
            check(ex.resume_token == token, "the token survived the restart")
            await engine.resume(ex.id, token, {"approved": True})
            ex = await engine.wait(ex.id)
            print(f"run 2: {ex.status.value} at {ex.current_step_id!r} until "
                  f"{ex.wake_at}; engine stops mid-wait")
            check(ex.current_step_id == "nap" and ex.wake_at is not None, "timed wait")

        await asyncio.sleep(0.8)  # the timer falls due while nothing runs
        async with open_engine(path) as engine:  # 3rd run: the overdue timer fires
            started = time.perf_counter()
            ex = await engine.wait(created.execution.id, timeout_s=10, until=ENDED)
            took = time.perf_counter() - started
            print(f"run 3: {ex.status.value} {took:.2f} s after reopening; "
                  f"context {ex.context}")
            check(ex.status == ExecutionStatus.COMPLETED, "completed after the restarts")
            check(ex.context.get("approval") == {"approved": True}, "resume data kept")
            events = await engine.history(ex.id)
            seqs = [e.seq for e in events]
            check(seqs == list(range(1, len(seqs) + 1)), "one gap-free event history")
            replayed = await engine.replay(ex.id)
            check(replayed is not None and replayed.status == ex.status
                  and replayed.context == ex.context, "replay from the log agrees")
            print(f"history: {len(events)} events across three engine runs; replay agrees")
    print("durable restart OK")


if __name__ == "__main__":
    asyncio.run(main())
