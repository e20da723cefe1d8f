"""Stateful handlers as jobs on the embedded engine, driven by publishing the workers'
commands by hand and reading the job views from the jobs topic (issue 12)."""

from __future__ import annotations

import asyncio

from flowmonkey import ExecutionStatus, HandlerParams, Result, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.events.types import payload
from flowmonkey.kernel.jobs import JOB_TIMEOUT
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of
from tests.behaviour.job_commands import JobCommands

ran: list[str] = []


@handler("export", stateful=True, job_timeout_ms=60_000, heartbeat_ms=2_000)
async def export(p: HandlerParams) -> StepResult:
    ran.append(p.execution.id)  # a worker runs it, never the processor
    return Result.success()


@handler("after")
async def after(p: HandlerParams) -> StepResult:
    return Result.success({"seen": p.context.get("exported")})


FLOWS = [
    flow("exporting", step("x", "export", output_key="exported", to="y"),
         step("y", "after", output_key="after")),
    flow("retrying", step("x", "export", retry={"maxAttempts": 1, "backoffMs": 0},
                          on_failure="y"),
         step("y", "after", output_key="after")),
    {**flow("beating", step("x", "export")),
     "steps": {"x": {**step("x", "export"), "heartbeatMs": 5_000, "timeoutMs": 9_000}}},
]


def harness() -> TestHarness:
    # no worker: the tests play the worker themselves
    return TestHarness(handlers=[export, after], flows=FLOWS, workers=0)


async def test_a_stateful_step_waits_on_a_job_that_a_worker_claims_and_completes() -> None:
    async with harness() as t:
        jobs = JobCommands(t.engine)
        created = await t.run("exporting", {"rows": 3})
        execution = created.execution
        assert execution.status == ExecutionStatus.WAITING
        offered = await jobs.pending(execution.id)
        assert offered["input"] == {"rows": 3}
        assert (offered["type"], offered["attempt"], offered["epoch"]) == ("export", 1, 0)
        assert (offered["heartbeat_ms"], offered["timeout_ms"], offered["lease_ms"]) == (
            2_000, 60_000, 6_000)  # the handler's settings; the lease is 3 heartbeats

        claimed = await jobs.claim(execution.id, offered["job_id"])
        assert claimed["answer"]["accepted"] is True
        assert (claimed["status"], claimed["epoch"], claimed["worker_id"]) == (
            "claimed", 1, "w1")
        assert claimed["input"] == {"rows": 3}  # the winner's answer: what it runs with
        await t.advance(1_000)
        beat = await jobs.write(n.CMD_JOB_HEARTBEAT, claimed)
        assert beat["lease_expires_at"] == claimed["lease_expires_at"] + 1_000
        for answered in (await jobs.write(n.CMD_JOB_PROGRESS, claimed, percent=50,
                                          message="half"),
                         await jobs.write(n.CMD_JOB_CHECKPOINT, claimed, data={"next": 2})):
            assert answered["answer"]["accepted"] is True
        done = await jobs.write(n.CMD_JOB_COMPLETE, claimed, output={"file": "a.csv"},
                                writes=[["note", "by the worker"]])
        assert done["status"] == "completed"
        assert done["answer"]["accepted"] is True
        await t.settle()

        final = await t.get(execution.id)
        assert final is not None
        t.assert_completed(final)
        assert final.context == {"rows": 3, "exported": {"file": "a.csv"},
                                 "note": "by the worker",
                                 "after": {"seen": {"file": "a.csv"}}}
        assert types_of(t.events_for(execution.id))[2:] == [
            n.STEP_STARTED, n.JOB_CREATED, n.EXECUTION_WAITING, n.JOB_CLAIMED,
            n.JOB_HEARTBEAT, n.JOB_PROGRESS, n.JOB_CHECKPOINT, n.JOB_COMPLETED,
            n.EXECUTION_RESUMED, n.STEP_COMPLETED, n.TRANSITION, n.STEP_STARTED,
            n.STEP_COMPLETED, n.EXECUTION_COMPLETED]
        assert ran == []
        for event in t.events_for(execution.id):
            payload(event)  # every job event matches its published schema


async def test_two_workers_racing_for_a_job_one_wins_the_other_is_told_at_once() -> None:
    async with harness() as t:
        jobs = JobCommands(t.engine)
        execution = (await t.run("exporting", {})).execution
        offered = await jobs.pending(execution.id)
        first, second = await asyncio.gather(
            jobs.send(n.CMD_JOB_CLAIM, execution.id, {"job_id": offered["job_id"],
                                                      "worker_id": "w1"}),
            jobs.send(n.CMD_JOB_CLAIM, execution.id, {"job_id": offered["job_id"],
                                                      "worker_id": "w2"}))
        answers = [(await jobs.answer(c))["answer"] for c in (first, second)]
        assert sorted(a["accepted"] for a in answers) == [False, True]
        lost = next(a for a in answers if not a["accepted"])
        assert lost["code"] == n.REJECT_JOB_ALREADY_CLAIMED


async def test_a_lapsed_lease_offers_the_job_again_and_fences_the_old_instance() -> None:
    async with harness() as t:
        jobs = JobCommands(t.engine)
        execution = (await t.run("exporting", {})).execution
        offered = await jobs.pending(execution.id)
        old = await jobs.claim(execution.id, offered["job_id"], "w1")
        await jobs.write(n.CMD_JOB_CHECKPOINT, old, data={"next": 40})

        await t.advance(6_000)  # the lease: 3 heartbeats of 2 s, none sent
        again = await jobs.latest(offered["job_id"])
        assert again["status"] == "pending"
        assert again["checkpoint_data"] == {"next": 40}  # where the next claimer resumes
        new = await jobs.claim(execution.id, offered["job_id"], "w2")
        assert (new["epoch"], new["worker_id"]) == (2, "w2")
        for late in (n.CMD_JOB_CHECKPOINT, n.CMD_JOB_COMPLETE):
            refused = await jobs.write(late, old, data={"next": 99}, output="stale")
            assert refused["answer"]["accepted"] is False
            assert refused["answer"]["code"] == n.REJECT_JOB_SUPERSEDED
            assert refused["instance_id"] == new["instance_id"]
        await jobs.write(n.CMD_JOB_COMPLETE, new, output="fresh")
        await t.settle()
        final = await t.get(execution.id)
        assert final is not None
        assert final.context["exported"] == "fresh"
        events = t.events_for(execution.id)
        assert types_of(events).count(n.JOB_SUPERSEDED) == 2
        assert types_of(events).count(n.JOB_COMPLETED) == 1


async def test_a_cancelled_execution_cancels_its_job_and_refuses_its_worker() -> None:
    async with harness() as t:
        jobs = JobCommands(t.engine)
        execution = (await t.run("exporting", {})).execution
        claimed = await jobs.claim(execution.id, (await jobs.pending(execution.id))["job_id"])
        await t.cancel(execution.id, reason="not needed")
        assert (await jobs.latest(claimed["job_id"]))["status"] == "cancelled"
        refused = await jobs.write(n.CMD_JOB_HEARTBEAT, claimed)
        assert refused["answer"]["code"] == n.REJECT_JOB_CANCELLED
        assert refused["status"] == "cancelled"


async def test_a_failed_job_is_retried_as_a_new_job_then_takes_on_failure() -> None:
    async with harness() as t:
        jobs = JobCommands(t.engine)
        execution = (await t.run("retrying", {})).execution
        first = await jobs.pending(execution.id)
        claimed = await jobs.claim(execution.id, first["job_id"])
        await jobs.write(n.CMD_JOB_FAIL, claimed, error={"code": "BUSY", "message": "later"})
        await t.settle()
        second = await jobs._first(lambda v: v["execution_id"] == execution.id
                                   and v["status"] == "pending"
                                   and v["job_id"] != first["job_id"])
        assert second["attempt"] == 2
        assert (await jobs.latest(first["job_id"]))["status"] == "failed"
        # the retry's job runs out of time: JOB_TIMEOUT, no retries left, on_failure
        await t.advance(60_000)
        final = await t.get(execution.id)
        assert final is not None
        t.assert_completed(final)
        assert (await jobs.latest(second["job_id"]))["status"] == "timed_out"
        failed = [e for e in t.events_for(execution.id) if e.type == n.JOB_FAILED]
        assert [e.data["error"]["code"] for e in failed] == ["BUSY", JOB_TIMEOUT]


async def test_the_step_sets_the_jobs_heartbeat_and_timeout_over_the_handler() -> None:
    async with harness() as t:
        jobs = JobCommands(t.engine)
        execution = (await t.run("beating", {})).execution
        offered = await jobs.pending(execution.id)
        assert (offered["heartbeat_ms"], offered["timeout_ms"]) == (5_000, 9_000)
