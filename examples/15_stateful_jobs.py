"""Stateful handlers: long work as a job, run by a worker, checkpointed as it goes.

``@handler("export", stateful=True)`` makes each step of the handler a *job*: the
execution waits while a worker claims it, runs the handler and completes it. The
handler gets ``params.job``: ``checkpoint(data)`` records how far it got (a job
re-claimed after a crash starts from ``job.checkpoint_data``), ``progress(percent,
message)`` reports progress (coalesced to one a second) and ``assert_active()``
raises once another worker took the job over or the execution was cancelled.

On the embedded log the engine runs a worker in its own process: zero setup. On
Kafka, run ``flowmonkey worker --app examples/15_stateful_jobs.py`` next to the
processors.

Run: python examples/15_stateful_jobs.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import (
    Engine,
    Event,
    EventDispatcher,
    ExecutionStatus,
    HandlerParams,
    Result,
    StepResult,
    handler,
)


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


BATCHES = 5


@handler("export", stateful=True, heartbeat_ms=5_000, job_timeout_ms=60_000)
async def export(params: HandlerParams) -> StepResult:
    job = params.job
    assert job is not None  # a stateful handler always has its job
    start = (job.checkpoint_data or {}).get("next", 0)  # where a re-claimed job resumes
    rows = 0
    for batch in range(start, BATCHES):
        await asyncio.sleep(0)  # the long work of one batch
        rows += 100
        await job.checkpoint({"next": batch + 1})
        await job.progress(100 * (batch + 1) / BATCHES, f"batch {batch + 1} of {BATCHES}")
        await job.assert_active()
    return Result.success({"file": f"export-{params.input['table']}.csv", "rows": rows})


@handler("notify")
async def notify(params: HandlerParams) -> StepResult:
    return Result.success(f"sent {params.context['export']['file']}")


flows = [{
    "id": "nightly-export", "version": "1.0.0", "initialStepId": "export",
    "steps": {
        "export": {"id": "export", "type": "export", "outputKey": "export",
                   "input": {"type": "full"}, "transitions": {"onSuccess": "notify"}},
        "notify": {"id": "notify", "type": "notify", "outputKey": "notice",
                   "transitions": {"onSuccess": None}},
    },
}]
handlers = [export, notify]


async def main() -> None:
    seen: list[str] = []

    def show(event: Event) -> None:
        seen.append(event.type)
        data = event.data
        if event.type == "job.progress":
            print(f"  progress {data['percent']:.0f}%: {data['message']}")
        elif event.type == "job.checkpoint":
            print(f"  checkpoint {data['checkpoint_seq']}: {data['data']}")
        elif event.type.startswith("job."):
            print(f"  {event.type}")

    dispatcher = EventDispatcher(mode="sync")
    dispatcher.on("*", show)
    async with Engine(flows=flows, handlers=handlers, dispatcher=dispatcher) as engine:
        created = await engine.create("nightly-export", {"table": "orders"})
        execution = await engine.wait(created.execution.id, until={
            ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})
    print(f"{execution.status.value}: {execution.context['export']}, {execution.context['notice']}")
    check(execution.status == ExecutionStatus.COMPLETED, "the export completes")
    check(execution.context["export"]["rows"] == 500, "every batch is exported")
    check(seen.count("job.checkpoint") == BATCHES, "one checkpoint per batch")
    check("job.progress" in seen, "progress is reported")
    check(seen.count("job.completed") == 1, "the job completes once")
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
