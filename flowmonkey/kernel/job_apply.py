"""Appliers of the job events (registered in ``kernel.apply.APPLIERS``).

As every applier: the state's job is replaced, never changed in place, and an event
about a job that is not the execution's open one changes nothing but ``ended_jobs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.kernel import job_state as js
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.job_state import JobState
from flowmonkey.kernel.state import ExecutionState

ENDED_JOBS_KEPT = 8
"""How many ended jobs an execution remembers (their id and how they ended), so a
worker that comes late (its job cancelled or finished meanwhile) is told why."""


def _open_job(s: ExecutionState, e: Event) -> JobState | None:
    job = s.job
    return job if job is not None and job.job_id == e.data["job_id"] else None


def _created(s: ExecutionState, e: Event) -> None:
    d = e.data
    s.job = JobState(
        job_id=d["job_id"], step_id=d["step_id"], type=d["step_type"], attempt=d["attempt"],
        attempt_id=d["attempt_id"], input=private_copy(d.get("input")), status=js.PENDING,
        created_at=e.timestamp_ms, deadline_at=d["deadline_at"], timeout_ms=d["timeout_ms"],
        heartbeat_ms=d["heartbeat_ms"], lease_ms=d["lease_ms"], offered_at=e.timestamp_ms)


def _changing(change: Callable[[JobState, Event], dict[str, Any]]) -> Callable[
        [ExecutionState, Event], None]:
    def apply_change(s: ExecutionState, e: Event) -> None:
        job = _open_job(s, e)
        if job is not None:
            s.job = replace(job, **change(job, e))
    return apply_change


def _claimed(job: JobState, e: Event) -> dict[str, Any]:
    d = e.data
    return {"status": js.CLAIMED, "epoch": d["epoch"], "instance_id": d["instance_id"],
            "worker_id": d["worker_id"], "claimed_at": e.timestamp_ms,
            "lease_expires_at": d["lease_expires_at"]}


def _heartbeat(job: JobState, e: Event) -> dict[str, Any]:
    return {"lease_expires_at": e.data["lease_expires_at"]}


def _progress(job: JobState, e: Event) -> dict[str, Any]:
    return {"last_progress_at": e.timestamp_ms, "progress_percent": e.data["percent"],
            "progress_message": e.data.get("message")}


def _checkpoint(job: JobState, e: Event) -> dict[str, Any]:
    return {"checkpoint_data": private_copy(e.data.get("data")),
            "checkpoint_seq": e.data["checkpoint_seq"]}


def _offered_again(job: JobState, e: Event) -> dict[str, Any]:
    """Lease expired or released: pending again, for any worker to claim (the epoch
    stays, so the next claim's is higher than every earlier one)."""
    return {"status": js.PENDING, "instance_id": None, "worker_id": None,
            "claimed_at": None, "lease_expires_at": None, "offered_at": e.timestamp_ms}


def _ending(status: str) -> Callable[[ExecutionState, Event], None]:
    def apply_end(s: ExecutionState, e: Event) -> None:
        job_id = e.data["job_id"]
        if _open_job(s, e) is None:
            return  # (job.failed after job.timed_out: the job ended with the first)
        s.job = None
        ended = {k: v for k, v in s.ended_jobs.items() if k != job_id}
        ended[job_id] = status
        while len(ended) > ENDED_JOBS_KEPT:
            del ended[next(iter(ended))]
        s.ended_jobs = ended
    return apply_end


def _nothing(s: ExecutionState, e: Event) -> None:
    """job.superseded: a refusal, kept as a fact; it changes no state."""


JOB_APPLIERS: dict[str, Callable[[ExecutionState, Event], None]] = {
    n.JOB_CREATED: _created,
    n.JOB_CLAIMED: _changing(_claimed),
    n.JOB_HEARTBEAT: _changing(_heartbeat),
    n.JOB_PROGRESS: _changing(_progress),
    n.JOB_CHECKPOINT: _changing(_checkpoint),
    n.JOB_LEASE_EXPIRED: _changing(_offered_again),
    n.JOB_RELEASED: _changing(_offered_again),
    n.JOB_SUPERSEDED: _nothing,
    n.JOB_COMPLETED: _ending(js.COMPLETED),
    n.JOB_FAILED: _ending(js.FAILED),
    n.JOB_TIMED_OUT: _ending(js.TIMED_OUT),
    n.JOB_CANCELLED: _ending(js.CANCELLED),
}
