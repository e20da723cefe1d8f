"""The flow and the stateful handler of the jobs crash test, loaded by `flowmonkey
processor --app` and `flowmonkey worker --app`.

``crunch`` processes 100 items, checkpointing after every 10, and resumes from its
checkpoint. Each item it processes is written to a ledger file of its process
(``JOBS_CRASH_LEDGER`` names the directory) as ``job_id item instance_id``, flushed at
once, so the test can count every item processed, by every process, killed or not.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from flowmonkey import Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.model.result import StepResult

ITEMS, EVERY = 100, 10
HEARTBEAT_MS = 1_000  # a lease of 3 s: the test's SIGSTOP outlasts it


@handler("crunch", stateful=True, heartbeat_ms=HEARTBEAT_MS, job_timeout_ms=600_000)
async def crunch(params: HandlerParams) -> StepResult:
    job = params.job
    assert job is not None
    start = int((job.checkpoint_data or {}).get("next", 0))
    ledger = Path(os.environ["JOBS_CRASH_LEDGER"]) / f"{os.getpid()}.txt"
    with ledger.open("a", encoding="utf-8") as out:
        for item in range(start, ITEMS):
            await asyncio.sleep(0.002)  # the work on one item
            out.write(f"{job.id} {item} {job.instance_id}\n")
            out.flush()
            if (item + 1) % EVERY == 0 and item + 1 < ITEMS:
                await job.checkpoint({"next": item + 1})
    return Result.success({"items": ITEMS, "started_at": start})


@handler("tally")
async def tally(params: HandlerParams) -> StepResult:
    return Result.success({"done": True})


JOBS = {
    "id": "jobs", "version": "1", "initialStepId": "crunch",
    "steps": {
        "crunch": {"type": "crunch", "outputKey": "crunched",
                   "transitions": {"onSuccess": "tally"}},
        "tally": {"type": "tally", "outputKey": "tally", "transitions": {"onSuccess": None}},
    },
}

flows = [JOBS]
handlers = [crunch, tally]
