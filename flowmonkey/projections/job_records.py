"""Job records: every job, open or ended, folded from its ``job.*`` events.

The one place both projection backends derive their jobs from (``memory.py`` keeps
the entries in dicts, ``postgres.py`` in ``fm_jobs`` as :func:`entry_to_json`). The
kernel's job state (``kernel/job_apply.py``) holds only an execution's open job and
forgets it when it ends; a record keeps the ended job too, with how it ended, its
output or error, and counts of its claims and lease expiries.

Like every applier, :func:`fold_job` never changes an entry in place: it returns a
new one (or the same one, when the event changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event, ms_to_datetime
from flowmonkey.kernel.copies import private_copy
from flowmonkey.model.job import JobRecord, JobStatus

JOB_EVENTS = frozenset({
    n.JOB_CREATED, n.JOB_CLAIMED, n.JOB_HEARTBEAT, n.JOB_PROGRESS, n.JOB_CHECKPOINT,
    n.JOB_COMPLETED, n.JOB_FAILED, n.JOB_SUPERSEDED, n.JOB_LEASE_EXPIRED, n.JOB_RELEASED,
    n.JOB_TIMED_OUT, n.JOB_CANCELLED})
"""The event types :func:`fold_job` reads (each names its job in ``data["job_id"]``)."""

_PENDING, _CLAIMED = JobStatus.PENDING.value, JobStatus.CLAIMED.value
_OPEN = frozenset({_PENDING, _CLAIMED})


@dataclass(slots=True)
class JobEntry:
    """A job as a projection stores it: points in time as epoch ms."""

    job_id: str
    execution_id: str
    tenant_id: str | None
    flow_id: str | None
    step_id: str
    type: str
    attempt: int
    status: str
    deadline_at: int
    heartbeat_ms: int
    timeout_ms: int
    created_at: int
    updated_at: int
    input: Any = None
    epoch: int = 0
    worker_id: str | None = None
    instance_id: str | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    checkpoint_seq: int = 0
    checkpoint_data: Any = None
    progress_percent: float | None = None
    progress_message: str | None = None
    lease_expires_at: int | None = None
    claimed_at: int | None = None
    ended_at: int | None = None
    claims: int = 0
    lease_expiries: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    def to_record(self) -> JobRecord:
        """The public record, the caller's own (values copied)."""
        dt = ms_to_datetime
        return JobRecord.model_construct(
            job_id=self.job_id, execution_id=self.execution_id, tenant_id=self.tenant_id,
            flow_id=self.flow_id, step_id=self.step_id, type=self.type, attempt=self.attempt,
            status=JobStatus(self.status), epoch=self.epoch, worker_id=self.worker_id,
            instance_id=self.instance_id, input=private_copy(self.input),
            output=private_copy(self.output), error=private_copy(self.error),
            checkpoint_seq=self.checkpoint_seq,
            checkpoint_data=private_copy(self.checkpoint_data),
            progress_percent=self.progress_percent, progress_message=self.progress_message,
            lease_expires_at=_maybe(self.lease_expires_at), deadline_at=dt(self.deadline_at),
            heartbeat_ms=self.heartbeat_ms, timeout_ms=self.timeout_ms,
            created_at=dt(self.created_at), claimed_at=_maybe(self.claimed_at),
            ended_at=_maybe(self.ended_at), updated_at=dt(self.updated_at),
            claims=self.claims, lease_expiries=self.lease_expiries)


def _maybe(ms: int | None) -> Any:
    return ms_to_datetime(ms) if ms is not None else None


_ENTRY_FIELDS = frozenset(f.name for f in fields(JobEntry))


def entry_to_json(entry: JobEntry) -> dict[str, Any]:
    return asdict(entry)


def entry_from_json(raw: dict[str, Any]) -> JobEntry:
    """The entry :func:`entry_to_json` wrote (unknown keys ignored: a newer writer's
    extra fields do not stop an older reader)."""
    return JobEntry(**{k: v for k, v in raw.items() if k in _ENTRY_FIELDS})


def job_id_of(event: Event) -> str | None:
    """The job a job event is about; None for any other event."""
    if event.type not in JOB_EVENTS:
        return None
    job_id = event.data.get("job_id")
    return job_id if isinstance(job_id, str) else None


def fold_job(entry: JobEntry | None, event: Event, flow_id: str | None) -> JobEntry | None:
    """``entry`` after ``event`` (a job event about it; ``flow_id`` is its execution's,
    read for ``job.created``). Events about a job never created, and writes after it
    ended, change nothing, as in the kernel."""
    kind, d, at = event.type, event.data, event.timestamp_ms
    if kind == n.JOB_CREATED:
        if entry is not None:
            return entry  # (created once: its id is derived from the attempt)
        return JobEntry(
            job_id=d["job_id"], execution_id=event.execution_id, tenant_id=event.tenant_id,
            flow_id=flow_id, step_id=d["step_id"], type=d["step_type"], attempt=d["attempt"],
            status=_PENDING, deadline_at=d["deadline_at"], heartbeat_ms=d["heartbeat_ms"],
            timeout_ms=d["timeout_ms"], created_at=at, updated_at=at,
            input=private_copy(d.get("input")))
    if entry is None:
        return None
    if not entry.is_open:
        if kind == n.JOB_FAILED and entry.status == JobStatus.TIMED_OUT and \
                entry.error is None:
            # a timeout is told as job.timed_out then job.failed, which says why
            return replace(entry, error=private_copy(d.get("error")), updated_at=at)
        return entry
    change = _CHANGES.get(kind)
    if change is None:  # job.superseded: a refusal, it changes no job
        return entry
    return replace(entry, updated_at=at, **change(entry, d, at))


def _claimed(entry: JobEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {"status": _CLAIMED, "epoch": d["epoch"], "worker_id": d["worker_id"],
            "instance_id": d["instance_id"], "claimed_at": at,
            "lease_expires_at": d["lease_expires_at"], "claims": entry.claims + 1}


def _heartbeat(entry: JobEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {"lease_expires_at": d["lease_expires_at"]}


def _progress(entry: JobEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {"progress_percent": d["percent"], "progress_message": d.get("message")}


def _checkpoint(entry: JobEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {"checkpoint_seq": d["checkpoint_seq"],
            "checkpoint_data": private_copy(d.get("data"))}


def _offered_again(entry: JobEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {"status": _PENDING, "worker_id": None, "instance_id": None, "claimed_at": None,
            "lease_expires_at": None}


def _lease_expired(entry: JobEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {**_offered_again(entry, d, at), "lease_expiries": entry.lease_expiries + 1}


_Change = Callable[[JobEntry, dict[str, Any], int], dict[str, Any]]


def _ended(status: JobStatus) -> _Change:
    def end(entry: JobEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
        changes: dict[str, Any] = {"status": status.value, "ended_at": at,
                                   "lease_expires_at": None}
        if status == JobStatus.COMPLETED:
            changes["output"] = private_copy(d.get("output"))
        elif status == JobStatus.FAILED:
            changes["error"] = private_copy(d.get("error"))
        elif status == JobStatus.CANCELLED and d.get("reason"):
            changes["error"] = {"code": "JOB_CANCELLED", "message": d["reason"]}
        return changes
    return end


_CHANGES: dict[str, _Change] = {
    n.JOB_CLAIMED: _claimed,
    n.JOB_HEARTBEAT: _heartbeat,
    n.JOB_PROGRESS: _progress,
    n.JOB_CHECKPOINT: _checkpoint,
    n.JOB_LEASE_EXPIRED: _lease_expired,
    n.JOB_RELEASED: _offered_again,
    n.JOB_COMPLETED: _ended(JobStatus.COMPLETED),
    n.JOB_FAILED: _ended(JobStatus.FAILED),
    n.JOB_TIMED_OUT: _ended(JobStatus.TIMED_OUT),
    n.JOB_CANCELLED: _ended(JobStatus.CANCELLED),
}


def summary_matches(entry: JobEntry, *, tenant_id: str | None, status: str | None,
                    type: str | None, execution_id: str | None,
                    worker_id: str | None) -> bool:
    """Whether ``entry`` passes a listing's filters (None: any)."""
    return ((tenant_id is None or entry.tenant_id == tenant_id)
            and (status is None or entry.status == status)
            and (type is None or entry.type == type)
            and (execution_id is None or entry.execution_id == execution_id)
            and (worker_id is None or entry.worker_id == worker_id))
