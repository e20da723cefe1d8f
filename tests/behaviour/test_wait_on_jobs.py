"""``Engine.wait`` waits through a job: an execution waiting on one is on its way (a
worker runs it and it ends by itself), so ``wait`` returns at WAITING only for a wait
that needs someone (a signal), unless the caller asks for WAITING itself."""

from __future__ import annotations

import asyncio

from flowmonkey import ExecutionStatus, HandlerParams, Result, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step
from tests.behaviour.job_commands import JobCommands


@handler("export", stateful=True)
async def export(p: HandlerParams) -> StepResult:
    raise AssertionError("a worker runs it, never the processor")


@handler("approve")
async def approve(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval", timeout_ms=600_000)


FLOWS = [flow("export-then-approve", step("x", "export", output_key="exported", to="a"),
              step("a", "approve", output_key="approved"))]


async def test_wait_returns_at_the_signal_wait_after_the_job_not_at_the_job() -> None:
    async with TestHarness(handlers=[export, approve], flows=FLOWS, workers=0) as t:
        jobs = JobCommands(t.engine)
        execution = (await t.run("export-then-approve", {})).execution
        resting = asyncio.create_task(t.engine.wait(execution.id, timeout_s=30))

        # asked for WAITING itself, the caller gets the wait on the job
        on_job = await t.engine.wait(execution.id, timeout_s=30,
                                     until={ExecutionStatus.WAITING})
        assert on_job.job is not None
        assert on_job.job.status == "pending"
        await t.settle()
        assert not resting.done()  # the job is on its way: nobody is needed yet

        offered = await jobs.pending(execution.id)
        claimed = await jobs.claim(execution.id, offered["job_id"])
        await jobs.write(n.CMD_JOB_COMPLETE, claimed, output={"file": "a.csv"})

        waiting = await resting
        assert waiting.status == ExecutionStatus.WAITING
        assert waiting.job is None
        assert waiting.current_step_id == "a"  # the signal wait: it needs someone now
        assert waiting.resume_token is not None
        assert waiting.context["exported"] == {"file": "a.csv"}


@handler("exporting", stateful=True)
async def exporting(p: HandlerParams) -> StepResult:
    job = p.job
    assert job is not None
    await job.checkpoint({"next": 2})
    await job.progress(100, "all rows")
    return Result.success({"file": "a.csv"})


async def test_with_the_engines_worker_wait_returns_the_end_and_the_job_is_kept() -> None:
    async with TestHarness(handlers=[exporting],
                           flows=[flow("worked", step("x", "exporting", output_key="out"))]
                           ) as t:
        created = await t.engine.create("worked", {"rows": 2})
        done = await t.engine.wait(created.execution.id, timeout_s=30)
        assert done.status == ExecutionStatus.COMPLETED
        assert done.job is None
        [job] = (await t.engine.projection.list_jobs(
            execution_id=created.execution.id)).items
        assert (job.status, job.output, job.claims, job.epoch) == (
            "completed", {"file": "a.csv"}, 1, 1)
        assert (job.checkpoint_seq, job.checkpoint_data) == (1, {"next": 2})
        assert job.worker_id is not None
        assert await t.engine.projection.get_job(job.job_id) == job
