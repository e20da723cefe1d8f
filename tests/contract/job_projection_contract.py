"""The jobs every :class:`~flowmonkey.projections.base.Projection` backend must keep.

A backend's test module subclasses :class:`JobProjectionContract` and provides the
``projection`` fixture (a started, empty projection). Jobs are driven by the events
the kernel emits for them (``job.created`` … ``job.cancelled``), written by hand here,
and read through ``get_job``/``list_jobs`` and the execution's ``job``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.model.job import JobStatus
from flowmonkey.projections.base import Projection
from flowmonkey.projections.rows import InvalidCursorError
from tests.contract.projection_contract import T0, created, ev, started

HEARTBEAT_MS, TIMEOUT_MS = 2_000, 60_000


def job_id(eid: str, attempt: int = 1) -> str:
    return f"job-{eid}-{attempt}"


def job_created(eid: str, seq: int, *, attempt: int = 1, type: str = "export",
                tenant: str | None = None, ts: int | None = None,
                input: Any = None) -> Event:
    at = ts if ts is not None else T0 + seq
    return ev(n.JOB_CREATED, eid, seq, {
        "job_id": job_id(eid, attempt), "step_id": "charge", "step_type": type,
        "attempt": attempt, "attempt_id": f"{eid}:{attempt}", "input": input,
        "timeout_ms": TIMEOUT_MS, "heartbeat_ms": HEARTBEAT_MS,
        "lease_ms": 3 * HEARTBEAT_MS, "deadline_at": at + TIMEOUT_MS},
        tenant=tenant, ts=at)


def job_ev(type: str, eid: str, seq: int, *, attempt: int = 1, tenant: str | None = None,
           **data: Any) -> Event:
    return ev(type, eid, seq, {"job_id": job_id(eid, attempt), **data}, tenant=tenant)


def claimed(eid: str, seq: int, worker: str = "w1", epoch: int = 1, *, attempt: int = 1,
            tenant: str | None = None) -> Event:
    return job_ev(n.JOB_CLAIMED, eid, seq, attempt=attempt, tenant=tenant, worker_id=worker,
                  instance_id=f"inst-{worker}-{epoch}", epoch=epoch,
                  lease_expires_at=T0 + seq + 3 * HEARTBEAT_MS, claim_latency_ms=1)


def waiting_on_job(eid: str, *, tenant: str | None = None, type: str = "export",
                   input: Any = None) -> list[Event]:
    """Seqs 1-4: the execution runs its step, a job (seq 4)."""
    return [created(eid, tenant=tenant), *started(eid, tenant=tenant),
            job_created(eid, 4, tenant=tenant, type=type, input=input)]


class JobProjectionContract:
    @pytest.fixture
    async def projection(self) -> AsyncIterator[Projection]:
        raise NotImplementedError("a backend's contract test provides a started Projection")
        yield  # noqa: PT022 - an async generator, so that overrides may tear down

    # --- one job's life ----------------------------------------------------------------

    async def test_a_created_job_is_pending_with_its_step_input_and_settings(
            self, projection: Projection) -> None:
        await projection.apply_events(waiting_on_job("e1", tenant="acme",
                                                     input={"rows": 3}))
        job = await projection.get_job(job_id("e1"))
        assert job is not None
        assert (job.execution_id, job.tenant_id, job.flow_id, job.step_id, job.type,
                job.attempt) == ("e1", "acme", "orders", "charge", "export", 1)
        assert (job.status, job.epoch, job.claims, job.worker_id) == (
            JobStatus.PENDING, 0, 0, None)
        assert job.input == {"rows": 3}
        assert (job.heartbeat_ms, job.timeout_ms) == (HEARTBEAT_MS, TIMEOUT_MS)
        assert job.created_at == job.updated_at
        assert int(job.created_at.timestamp() * 1000) == T0 + 4
        assert int(job.deadline_at.timestamp() * 1000) == T0 + 4 + TIMEOUT_MS
        assert job.ended_at is None
        assert job.lease_expires_at is None

    async def test_claims_progress_checkpoints_heartbeats_and_lease_expiry_are_kept(
            self, projection: Projection) -> None:
        await projection.apply_events(waiting_on_job("e1"))
        await projection.apply_events([
            claimed("e1", 5),
            job_ev(n.JOB_PROGRESS, "e1", 6, instance_id="inst-w1-1", percent=40.0,
                   message="four of ten"),
            job_ev(n.JOB_CHECKPOINT, "e1", 7, instance_id="inst-w1-1", epoch=1,
                   checkpoint_seq=1, data={"next": 4}),
            job_ev(n.JOB_HEARTBEAT, "e1", 8, instance_id="inst-w1-1", epoch=1,
                   lease_expires_at=T0 + 99_000)])
        job = await projection.get_job(job_id("e1"))
        assert job is not None
        assert (job.status, job.epoch, job.worker_id, job.instance_id, job.claims) == (
            JobStatus.CLAIMED, 1, "w1", "inst-w1-1", 1)
        assert (job.progress_percent, job.progress_message) == (40.0, "four of ten")
        assert (job.checkpoint_seq, job.checkpoint_data) == (1, {"next": 4})
        assert job.lease_expires_at is not None
        assert int(job.lease_expires_at.timestamp() * 1000) == T0 + 99_000
        assert job.claimed_at is not None
        assert int(job.claimed_at.timestamp() * 1000) == T0 + 5
        assert int(job.updated_at.timestamp() * 1000) == T0 + 8

        # the lease runs out: pending again, for another worker, the checkpoint kept
        await projection.apply_events([
            job_ev(n.JOB_LEASE_EXPIRED, "e1", 9, instance_id="inst-w1-1", epoch=1)])
        job = await projection.get_job(job_id("e1"))
        assert job is not None
        assert (job.status, job.worker_id, job.instance_id, job.lease_expires_at,
                job.claimed_at) == (JobStatus.PENDING, None, None, None, None)
        assert (job.lease_expiries, job.epoch, job.checkpoint_seq) == (1, 1, 1)

        await projection.apply_events([claimed("e1", 10, "w2", 2)])
        job = await projection.get_job(job_id("e1"))
        assert job is not None
        assert (job.status, job.worker_id, job.epoch, job.claims) == (
            JobStatus.CLAIMED, "w2", 2, 2)

    async def test_a_completed_job_keeps_its_output_and_worker_after_it_ended(
            self, projection: Projection) -> None:
        await projection.apply_events([
            *waiting_on_job("e1"), claimed("e1", 5),
            job_ev(n.JOB_COMPLETED, "e1", 6, instance_id="inst-w1-1", epoch=1,
                   output={"file": "a.csv"}, duration_ms=2)])
        job = await projection.get_job(job_id("e1"))
        assert job is not None
        assert (job.status, job.output, job.worker_id, job.error) == (
            JobStatus.COMPLETED, {"file": "a.csv"}, "w1", None)
        assert job.ended_at is not None
        assert int(job.ended_at.timestamp() * 1000) == T0 + 6
        assert job.lease_expires_at is None

    async def test_failed_timed_out_and_cancelled_jobs_say_why(
            self, projection: Projection) -> None:
        error = {"code": "EXPORT_BROKE", "message": "disk full"}
        timeout = {"code": "JOB_TIMEOUT", "message": "did not finish"}
        await projection.apply_events([
            *waiting_on_job("e1"), claimed("e1", 5),
            job_ev(n.JOB_FAILED, "e1", 6, instance_id="inst-w1-1", epoch=1, error=error,
                   duration_ms=1),
            *waiting_on_job("e2"),
            job_ev(n.JOB_TIMED_OUT, "e2", 5, timeout_ms=TIMEOUT_MS, instance_id=None),
            job_ev(n.JOB_FAILED, "e2", 6, instance_id=None, epoch=0, error=timeout,
                   duration_ms=TIMEOUT_MS),
            *waiting_on_job("e3"), claimed("e3", 5),
            job_ev(n.JOB_CANCELLED, "e3", 6, reason="changed my mind")])
        failed, timed_out, cancelled = [await projection.get_job(job_id(e))
                                        for e in ("e1", "e2", "e3")]
        assert failed is not None
        assert timed_out is not None
        assert cancelled is not None
        assert (failed.status, failed.error) == (JobStatus.FAILED, error)
        assert (timed_out.status, timed_out.error) == (JobStatus.TIMED_OUT, timeout)
        assert cancelled.status == JobStatus.CANCELLED
        assert cancelled.error is not None
        assert cancelled.error["message"] == "changed my mind"
        assert all(j.ended_at is not None for j in (failed, timed_out, cancelled))

    async def test_writes_after_the_end_refusals_and_redelivery_change_nothing(
            self, projection: Projection) -> None:
        batch = [*waiting_on_job("e1"), claimed("e1", 5),
                 job_ev(n.JOB_SUPERSEDED, "e1", 6, instance_id="inst-old", epoch=None,
                        command_type=n.CMD_JOB_CHECKPOINT, command_id="c1",
                        current_instance_id="inst-w1-1", current_epoch=1),
                 job_ev(n.JOB_COMPLETED, "e1", 7, instance_id="inst-w1-1", epoch=1,
                        output=1, duration_ms=1)]
        await projection.apply_events(batch)
        before = await projection.get_job(job_id("e1"))
        await projection.apply_events(batch)
        await projection.apply_events([
            job_ev(n.JOB_PROGRESS, "e1", 8, instance_id="inst-w1-1", percent=99.0),
            job_ev(n.JOB_CANCELLED, "e1", 9, reason="late")])
        assert await projection.get_job(job_id("e1")) == before
        assert before is not None
        assert before.status == JobStatus.COMPLETED

    async def test_events_about_a_job_never_created_are_ignored(
            self, projection: Projection) -> None:
        await projection.apply_events([created("e1"), *started("e1"), claimed("e1", 4)])
        assert await projection.get_job(job_id("e1")) is None
        assert (await projection.list_jobs()).items == []

    async def test_a_retry_is_a_new_job_and_the_first_one_stays(
            self, projection: Projection) -> None:
        await projection.apply_events([
            *waiting_on_job("e1"), claimed("e1", 5),
            job_ev(n.JOB_FAILED, "e1", 6, instance_id="inst-w1-1", epoch=1,
                   error={"code": "X", "message": "x"}, duration_ms=1),
            job_created("e1", 7, attempt=2)])
        page = await projection.list_jobs(execution_id="e1")
        assert [(j.job_id, j.attempt, j.status) for j in page.items] == [
            (job_id("e1", 2), 2, JobStatus.PENDING), (job_id("e1", 1), 1, JobStatus.FAILED)]

    # --- the execution's job -----------------------------------------------------------

    async def test_the_execution_shows_its_open_job_and_none_once_it_ended(
            self, projection: Projection) -> None:
        await projection.apply_events([
            *waiting_on_job("e1"), claimed("e1", 5),
            job_ev(n.JOB_PROGRESS, "e1", 6, instance_id="inst-w1-1", percent=50.0,
                   message="half"),
            job_ev(n.JOB_CHECKPOINT, "e1", 7, instance_id="inst-w1-1", epoch=1,
                   checkpoint_seq=3, data=None)])
        execution = await projection.get("e1")
        assert execution is not None
        assert execution.job is not None
        assert execution.job.model_dump() == {
            "job_id": job_id("e1"), "type": "export", "status": JobStatus.CLAIMED,
            "epoch": 1, "worker_id": "w1", "progress_percent": 50.0,
            "progress_message": "half", "checkpoint_seq": 3}
        await projection.apply_events([
            job_ev(n.JOB_COMPLETED, "e1", 8, instance_id="inst-w1-1", epoch=1, output=None,
                   duration_ms=1)])
        execution = await projection.get("e1")
        assert execution is not None
        assert execution.job is None

    # --- reading ----------------------------------------------------------------------

    async def test_a_job_of_another_tenant_is_not_found(self, projection: Projection) -> None:
        await projection.apply_events(waiting_on_job("e1", tenant="acme"))
        assert await projection.get_job(job_id("e1"), tenant_id="acme") is not None
        assert await projection.get_job(job_id("e1"), tenant_id="globex") is None
        assert await projection.get_job("job-unknown") is None
        assert (await projection.list_jobs(tenant_id="globex")).items == []

    async def test_listing_filters_by_status_type_execution_worker_and_tenant(
            self, projection: Projection) -> None:
        await projection.apply_events([
            *waiting_on_job("e1", tenant="acme"), claimed("e1", 5, "w1", tenant="acme"),
            *waiting_on_job("e2", tenant="acme", type="import"),
            *waiting_on_job("e3", tenant="globex"), claimed("e3", 5, "w2", tenant="globex")])

        async def ids(**filters: Any) -> list[str]:
            return [j.execution_id for j in (await projection.list_jobs(**filters)).items]

        assert sorted(await ids()) == ["e1", "e2", "e3"]
        assert sorted(await ids(status="claimed")) == ["e1", "e3"]
        assert await ids(status=JobStatus.PENDING) == ["e2"]
        assert await ids(status="completed") == []
        assert await ids(type="import") == ["e2"]
        assert await ids(execution_id="e3") == ["e3"]
        assert await ids(worker_id="w2") == ["e3"]
        assert sorted(await ids(tenant_id="acme")) == ["e1", "e2"]
        assert await ids(tenant_id="acme", status="claimed", type="export",
                         worker_id="w1", execution_id="e1") == ["e1"]
        assert await ids(tenant_id="globex", worker_id="w1") == []

    async def test_listing_is_newest_first_and_a_cursor_walks_every_job_once(
            self, projection: Projection) -> None:
        # seven jobs, three created at the same millisecond (ties go by job id)
        times = [T0 + 10, T0 + 30, T0 + 20, T0 + 20, T0 + 40, T0 + 20, T0 + 5]
        for i, at in enumerate(times):
            eid = f"e{i}"
            await projection.apply_events([created(eid), *started(eid),
                                           job_created(eid, 4, ts=at)])
        expected = sorted(((at, job_id(f"e{i}")) for i, at in enumerate(times)),
                          reverse=True)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await projection.list_jobs(limit=3, cursor=cursor)
            seen += [j.job_id for j in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [i for _, i in expected]
        assert pages == 3
        filtered = await projection.list_jobs(limit=2, status="pending")
        assert [j.job_id for j in filtered.items] == [i for _, i in expected[:2]]
        assert filtered.next_cursor is not None

    async def test_a_cursor_not_handed_out_is_refused(self, projection: Projection) -> None:
        with pytest.raises(InvalidCursorError):
            await projection.list_jobs(cursor="not-a-cursor")
