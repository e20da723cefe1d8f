"""A FlowMonkey process on a durable embedded log, for the crash-recovery test.

    python durable_app.py DATA_DIR create N   # start N executions, then keep running
    python durable_app.py DATA_DIR finish     # reopen and run until every execution ends

Prints progress lines the test reads ("created N", "progress K", "all done").
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import Engine, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


@handler("nap")
async def nap(params: HandlerParams) -> StepResult:
    return Result.wait(150, "nap")


@handler("flaky")
async def flaky(params: HandlerParams) -> StepResult:
    if params.attempt == 1:
        return Result.failure("TRANSIENT", "first try always fails")
    return Result.success({"attempt": params.attempt})


FLOW = {
    "id": "crashy", "version": "1", "initialStepId": "a",
    "steps": {
        "a": {"type": "noop", "outputKey": "a", "transitions": {"onSuccess": "b"}},
        "b": {"type": "nap", "transitions": {"onSuccess": "c"}},
        "c": {"type": "flaky", "outputKey": "c", "transitions": {"onSuccess": "d"},
              "retry": {"maxAttempts": 2, "backoffMs": 100}},
        "d": {"type": "noop", "outputKey": "d", "transitions": {"onSuccess": None}},
    },
}


async def main(data_dir: str, mode: str, count: int) -> None:
    engine = Engine(flows=[FLOW], handlers=[noop, nap, flaky],
                    log=EmbeddedLog(path=data_dir, partitions=4))
    async with engine:
        if mode == "create":
            await asyncio.gather(*(engine.create("crashy", {"i": i}) for i in range(count)))
            print(f"created {count}", flush=True)
        while True:
            page = await engine.list(limit=10_000)
            done = sum(1 for e in page.items if e.status.is_terminal)
            print(f"progress {done}/{len(page.items)}", flush=True)
            if page.items and done == len(page.items) and \
                    all(e.status == ExecutionStatus.COMPLETED for e in page.items):
                print("all done", flush=True)
                return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))
