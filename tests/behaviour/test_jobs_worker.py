"""Stateful handlers run by Workers (issue 12): the engine's in-process worker in the
TestHarness (simulated time), and Workers of their own on the harness's log for the
races a test has to stage (a stalled worker, a graceful stop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from flowmonkey import (
    Engine,
    ExecutionStatus,
    HandlerParams,
    JobSupersededError,
    Result,
    StepResult,
    Worker,
    handler,
)
from flowmonkey.events import names as n
from flowmonkey.jobs.handle import JobHandle
from flowmonkey.metrics import Metrics
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of

HEARTBEAT_MS = 2_000
LEASE_MS = 3 * HEARTBEAT_MS


class MetricDeltas:
    """Samples of a (maybe process-wide) registry, counted from now on."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.names = ("flowmonkey_processor_job_events_total",
                      "flowmonkey_processor_job_claim_latency_seconds_count",
                      "flowmonkey_worker_jobs_claimed_total",
                      "flowmonkey_worker_jobs_completed_total")
        self.before = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for s in self._samples()}

    def _samples(self) -> list[Any]:
        return [sample for family in self.metrics.registry.collect()
                for sample in family.samples if sample.name in self.names]

    def delta(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        now = self.metrics.registry.get_sample_value(name, labels) or 0.0
        return float(now - self.before.get(key, 0.0))


class Script:
    """What the test wants the ``export`` handler to do, and what it saw."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.body: Callable[[HandlerParams], Any] | None = None
        self.seen: list[dict[str, Any]] = []


script = Script()


@handler("export", stateful=True, heartbeat_ms=HEARTBEAT_MS, job_timeout_ms=600_000)
async def export(p: HandlerParams) -> StepResult:
    job = p.job
    assert job is not None
    script.seen.append({"id": job.id, "instance_id": job.instance_id, "attempt": job.attempt,
                        "checkpoint": job.checkpoint_data, "input": p.input,
                        "config": dict(p.config)})
    if script.body is not None:
        result: StepResult = await script.body(p)
        return result
    return Result.success({"rows": (p.input or {}).get("rows")})


@handler("other", stateful=True, heartbeat_ms=HEARTBEAT_MS)
async def other(p: HandlerParams) -> StepResult:
    return Result.success("other")


@handler("plain")
async def plain(p: HandlerParams) -> StepResult:
    return Result.success({"job": p.job is None})


FLOWS = [
    flow("exporting", step("x", "export", output_key="exported", to="y",
                           config={"format": "csv"}),
         step("y", "plain", output_key="after")),
    flow("retrying", step("x", "export", output_key="exported",
                          retry={"maxAttempts": 2, "backoffMs": 1_000})),
    flow("othering", step("x", "other", output_key="out")),
]


@pytest.fixture(autouse=True)
def _fresh_script() -> None:
    script.reset()


def harness(workers: int | None = None) -> TestHarness:
    return TestHarness(handlers=[export, other, plain], flows=FLOWS, workers=workers)


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not check():
        assert loop.time() < deadline, f"not within 15 s: {what}"
        await asyncio.sleep(0.002)


def job_events(t: TestHarness, execution_id: str) -> list[str]:
    return types_of(t.events_for(execution_id), prefix="job.")


async def test_the_in_process_worker_runs_the_job_and_the_flow_continues() -> None:
    async with harness() as t:
        run = await t.run("exporting", {"rows": 3})
        t.assert_completed(run.execution)
        assert run.execution.context == {"rows": 3, "exported": {"rows": 3},
                                         "after": {"job": True}}
        assert job_events(t, run.execution.id) == [n.JOB_CREATED, n.JOB_CLAIMED,
                                                   n.JOB_COMPLETED]
        [seen] = script.seen
        assert (seen["attempt"], seen["checkpoint"], seen["input"], seen["config"]) == (
            1, None, {"rows": 3}, {"format": "csv"})
        claimed = next(e for e in t.events_for(run.execution.id) if e.type == n.JOB_CLAIMED)
        assert claimed.data["instance_id"] == seen["instance_id"]
        assert t.engine.worker is not None
        assert claimed.data["worker_id"] == t.engine.worker.worker_id


async def test_checkpoints_and_context_writes_travel_with_the_job() -> None:
    async def body(p: HandlerParams) -> StepResult:
        assert p.job is not None
        for i in range(3):
            await p.job.checkpoint({"next": i + 1})
        assert p.job.checkpoint_data == {"next": 3}
        p.helpers.set("note", "written by the job")
        return Result.success("done")

    script.body = body
    async with harness() as t:
        run = await t.run("exporting", {})
        t.assert_completed(run.execution)
        assert run.execution.context["note"] == "written by the job"
        assert job_events(t, run.execution.id).count(n.JOB_CHECKPOINT) == 3


async def test_a_failure_result_is_retried_as_a_new_job() -> None:
    async def body(p: HandlerParams) -> StepResult:
        if p.attempt == 1:
            return Result.failure("BUSY", "try later")
        return Result.success("second time")

    script.body = body
    async with harness() as t:
        run = await t.run("retrying", {})
        t.assert_completed(run.execution)
        assert run.execution.context["exported"] == "second time"
        assert [s["attempt"] for s in script.seen] == [1, 2]
        assert script.seen[0]["id"] != script.seen[1]["id"]  # a retry is a new job
        failed = [e for e in run.events if e.type == n.JOB_FAILED]
        assert [e.data["error"]["code"] for e in failed] == ["BUSY"]


async def test_an_exception_fails_the_job_with_handler_error() -> None:
    async def body(p: HandlerParams) -> StepResult:
        raise ValueError("the export broke")

    script.body = body
    async with harness() as t:
        run = await t.run("exporting", {})
        t.assert_failed(run.execution, "HANDLER_ERROR")
        failed = next(e for e in run.events if e.type == n.JOB_FAILED)
        assert failed.data["error"]["message"] == "the export broke"


async def test_a_cancel_reaches_the_running_handler_within_one_heartbeat() -> None:
    started, outcome = asyncio.Event(), []

    async def body(p: HandlerParams) -> StepResult:
        started.set()
        try:
            await asyncio.Event().wait()  # works until told to stop
        except asyncio.CancelledError:
            outcome.append(("cancelled", p.abort.is_set()))
            raise
        return Result.success()

    script.body = body
    async with harness() as t:
        created = await t.engine.create("exporting", {})
        await asyncio.wait_for(started.wait(), 15)
        await t.engine.cancel(created.execution.id, reason="not needed")
        assert outcome == []  # the worker hears of it at its next heartbeat
        t.clock.advance(HEARTBEAT_MS)
        await t.settle()
        assert outcome == [("cancelled", True)]
        execution = await t.get(created.execution.id)
        assert execution is not None
        t.assert_cancelled(execution)
        events = job_events(t, created.execution.id)
        assert n.JOB_CANCELLED in events
        assert n.JOB_COMPLETED not in events
        assert n.JOB_FAILED not in events


async def test_a_crashed_workers_job_is_reclaimed_after_its_lease_and_resumes_from_its_checkpoint(
) -> None:
    processed: list[int] = []
    blocked = asyncio.Event()

    async def body(p: HandlerParams) -> StepResult:
        assert p.job is not None
        start = (p.job.checkpoint_data or {}).get("next", 0)
        for i in range(start, 10):
            processed.append(i)
            await p.job.checkpoint({"next": i + 1})
            if i == 4 and len(script.seen) == 1:
                blocked.set()
                await asyncio.Event().wait()  # the crash comes here
        return Result.success({"items": 10})

    script.body = body
    async with harness() as t:
        counted = MetricDeltas(t.engine.metrics)
        created = await t.engine.create("exporting", {})
        await asyncio.wait_for(blocked.wait(), 15)
        first = t.engine.worker
        await t.crash_worker()
        assert t.engine.worker is not first
        await t.advance(LEASE_MS)  # no heartbeats: the lease runs out, the job is offered
        execution = await t.get(created.execution.id)
        assert execution is not None
        t.assert_completed(execution)
        assert processed == list(range(10))  # resumed at 5: nothing done twice
        assert [s["checkpoint"] for s in script.seen] == [None, {"next": 5}]
        events = t.events_for(created.execution.id)
        claims = [e.data for e in events if e.type == n.JOB_CLAIMED]
        assert [c["epoch"] for c in claims] == [1, 2]
        assert claims[0]["worker_id"] != claims[1]["worker_id"]
        assert types_of(events).count(n.JOB_LEASE_EXPIRED) == 1
        assert types_of(events).count(n.JOB_COMPLETED) == 1
        # and the metrics say so: the processor's job events and claim latencies, the
        # workers' claims and completions
        job_events = "flowmonkey_processor_job_events_total"
        assert counted.delta(job_events, type=n.JOB_LEASE_EXPIRED) == 1
        assert counted.delta(job_events, type=n.JOB_CLAIMED) == 2
        assert counted.delta(job_events, type=n.JOB_COMPLETED) == 1
        assert counted.delta("flowmonkey_processor_job_claim_latency_seconds_count") == 2
        assert counted.delta("flowmonkey_worker_jobs_claimed_total") == 2
        assert counted.delta("flowmonkey_worker_jobs_completed_total") == 1


async def test_a_superseded_worker_cannot_checkpoint_or_complete() -> None:
    gates = {1: asyncio.Event(), 2: asyncio.Event()}
    waiting: list[int] = []
    stale: list[str] = []

    async def body(p: HandlerParams) -> StepResult:
        assert p.job is not None
        run = len(script.seen)
        if run == 1:
            await p.job.checkpoint({"next": 1})
        waiting.append(run)
        await gates[run].wait()
        try:
            await p.job.checkpoint({"next": 2, "by": run})
        except JobSupersededError as exc:
            stale.append(exc.code)
            try:
                await p.job.assert_active()
            except JobSupersededError:
                stale.append("still superseded")
        return Result.success(f"run {run}")

    script.body = body
    async with harness(workers=0) as t:
        log = t.engine.log
        stalled_metrics = Metrics()
        # its clock never moves: it never heartbeats, like a stopped process
        stalled = Worker(log=log, handlers=[export], clock=SimulatedClock(),
                         flows=t.engine.flows, metrics=stalled_metrics, worker_id="stalled",
                         close_log=False, grace_s=0)
        fresh = Worker(log=log, handlers=[export], clock=t.clock, flows=t.engine.flows,
                       metrics=Metrics(), worker_id="fresh", close_log=False, grace_s=0)
        await stalled.start()
        try:
            created = await t.engine.create("exporting", {})
            await until(lambda: waiting == [1], "the first run waits")
            await t.advance(LEASE_MS)
            await fresh.start()
            await until(lambda: waiting == [1, 2], "the second run waits")
            assert script.seen[1]["checkpoint"] == {"next": 1}

            gates[1].set()  # the stalled one wakes up and carries on
            await until(lambda: stalled.running == 0, "the stalled run ends")
            assert stale == [JobSupersededError.code, "still superseded"]
            assert stalled_metrics.jobs_superseded._value.get() == 1

            gates[2].set()
            await until(lambda: fresh.running == 0, "the fresh run ends")
            execution = await t.get(created.execution.id)
            assert execution is not None
            t.assert_completed(execution)
            assert execution.context["exported"] == "run 2"
            events = t.events_for(created.execution.id)
            assert types_of(events).count(n.JOB_COMPLETED) == 1
            superseded = [e.data for e in events if e.type == n.JOB_SUPERSEDED]
            assert [s["instance_id"] for s in superseded] == [script.seen[0]["instance_id"]]
        finally:
            await stalled.stop()
            await fresh.stop()


async def test_a_graceful_stop_releases_unfinished_jobs_for_another_worker() -> None:
    waiting = asyncio.Event()
    cancelled: list[bool] = []

    async def body(p: HandlerParams) -> StepResult:
        if len(script.seen) == 1:
            waiting.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(p.abort.is_set())
                raise
        return Result.success("by the second worker")

    script.body = body
    async with harness(workers=0) as t:
        metrics = Metrics()
        leaving = Worker(log=t.engine.log, handlers=[export], clock=t.clock,
                         flows=t.engine.flows, metrics=metrics, close_log=False, grace_s=0.01)
        await leaving.start()
        created = await t.engine.create("exporting", {})
        await asyncio.wait_for(waiting.wait(), 15)
        await leaving.stop()
        assert cancelled == [True]
        assert metrics.jobs_released._value.get() == 1
        async with Worker(log=t.engine.log, handlers=[export], clock=t.clock,
                          flows=t.engine.flows, metrics=Metrics(), close_log=False):
            await until(lambda: len(script.seen) == 2, "the released job is taken at once")
            execution = await t.engine.wait(created.execution.id, until={
                ExecutionStatus.COMPLETED, ExecutionStatus.FAILED})
        t.assert_completed(execution)
        events = job_events(t, created.execution.id)
        assert events.count(n.JOB_RELEASED) == 1
        assert n.JOB_LEASE_EXPIRED not in events  # no lease had to run out


async def test_a_job_that_finishes_within_the_grace_period_completes() -> None:
    waiting, go = asyncio.Event(), asyncio.Event()

    async def body(p: HandlerParams) -> StepResult:
        waiting.set()
        await go.wait()
        return Result.success("finished in time")

    script.body = body
    async with harness(workers=0) as t:
        worker = Worker(log=t.engine.log, handlers=[export], clock=t.clock,
                        flows=t.engine.flows, metrics=Metrics(), close_log=False, grace_s=30)
        await worker.start()
        created = await t.engine.create("exporting", {})
        await asyncio.wait_for(waiting.wait(), 15)
        stopping = asyncio.ensure_future(worker.stop())
        await asyncio.sleep(0)
        go.set()
        await stopping
        execution = await t.get(created.execution.id)
        assert execution is not None
        t.assert_completed(execution)
        assert n.JOB_RELEASED not in job_events(t, created.execution.id)


async def test_progress_reports_are_coalesced_to_one_a_second_the_last_one_winning() -> None:
    reported, go = asyncio.Event(), asyncio.Event()

    async def body(p: HandlerParams) -> StepResult:
        assert p.job is not None
        for percent in (10, 20, 30):
            await p.job.progress(percent, f"at {percent}")
        reported.set()
        await go.wait()
        return Result.success()

    script.body = body
    async with harness() as t:
        created = await t.engine.create("exporting", {})
        await asyncio.wait_for(reported.wait(), 15)

        def progress() -> list[tuple[float, str]]:
            return [(e.data["percent"], e.data["message"])
                    for e in t.events_for(created.execution.id) if e.type == n.JOB_PROGRESS]

        await until(lambda: len(progress()) == 1, "the first report")
        t.clock.advance(1_000)
        await until(lambda: len(progress()) == 2, "the coalesced report")
        go.set()
        await t.settle()
        assert progress() == [(10, "at 10"), (30, "at 30")]


async def test_a_worker_runs_at_most_concurrency_jobs_at_once() -> None:
    go = asyncio.Event()
    running: list[int] = [0, 0]  # now, most

    async def body(p: HandlerParams) -> StepResult:
        running[0] += 1
        running[1] = max(running)
        await go.wait()
        running[0] -= 1
        return Result.success()

    script.body = body
    async with harness(workers=2) as t:
        ids = [(await t.engine.create("exporting", {})).execution.id for _ in range(5)]
        worker = t.engine.worker
        assert worker is not None
        await until(lambda: running[0] == 2 and worker.pending == 3,
                    "two jobs run, three wait")
        for _ in range(50):
            await asyncio.sleep(0)
        assert (running[0], worker.running, worker.pending) == (2, 2, 3)
        go.set()
        await t.settle()
        for execution_id in ids:
            execution = await t.get(execution_id)
            assert execution is not None
            t.assert_completed(execution)
        assert running[1] == 2


async def test_a_worker_claims_only_the_types_it_is_given() -> None:
    t = harness(workers=0)
    async with t, Worker(log=t.engine.log, handlers=[export, other], types=["export"],
                         clock=t.clock, flows=t.engine.flows, metrics=Metrics(),
                         close_log=False) as worker:
        exported = (await t.engine.create("exporting", {})).execution.id
        othered = (await t.engine.create("othering", {})).execution.id
        done = await t.engine.wait(exported, until={ExecutionStatus.COMPLETED})
        t.assert_completed(done)
        assert worker.pending == 0  # the other type's job is not even remembered
        waiting = await t.get(othered)
        assert waiting is not None
        assert waiting.status == ExecutionStatus.WAITING
        assert job_events(t, othered) == [n.JOB_CREATED]


def test_a_worker_refuses_what_it_cannot_run() -> None:
    log = TestHarness().engine.log
    with pytest.raises(ValueError, match="not stateful"):
        Worker(log=log, handlers=[plain])
    with pytest.raises(ValueError, match="no handler"):
        Worker(log=log, handlers=[export], types=["other"])
    with pytest.raises(ValueError, match="concurrency"):
        Worker(log=log, handlers=[export], concurrency=0)


async def test_an_embedded_engine_runs_stateful_handlers_with_zero_setup() -> None:
    async with Engine(flows=FLOWS, handlers=[export, other, plain],
                      metrics=Metrics()) as engine:
        assert engine.worker is not None
        created = await engine.create("exporting", {"rows": 7})
        execution = await engine.wait(created.execution.id, until={
            ExecutionStatus.COMPLETED, ExecutionStatus.FAILED})
        assert execution.status == ExecutionStatus.COMPLETED
        assert execution.context["exported"] == {"rows": 7}
    async with Engine(flows=FLOWS, handlers=[export, other, plain], workers=0,
                      metrics=Metrics()) as engine:
        assert engine.worker is None


def test_params_job_is_the_job_handle_only_for_stateful_handlers() -> None:
    seen: list[Any] = []

    async def body(p: HandlerParams) -> StepResult:
        seen.append(p.job)
        return Result.success()

    script.body = body
    run = harness().run_sync("exporting", {})
    assert run.execution.context["after"] == {"job": True}  # the stateless step: None
    assert isinstance(seen[0], JobHandle)
