"""The open job of an execution: a stateful handler's step attempt, run by a worker.

Like the rest of the state it is changed only by appliers, which replace it
(``dataclasses.replace``) instead of changing it in place, so clones stay independent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

PENDING = "pending"
CLAIMED = "claimed"
# how a job ended (kept in ExecutionState.ended_jobs, shown in job views)
COMPLETED = "completed"
FAILED = "failed"
TIMED_OUT = "timed_out"
CANCELLED = "cancelled"


@dataclass(slots=True)
class JobState:
    job_id: str
    step_id: str
    type: str
    attempt: int
    attempt_id: str
    input: Any
    status: str  # pending | claimed
    created_at: int
    deadline_at: int  # created_at + timeout_ms
    timeout_ms: int
    heartbeat_ms: int
    lease_ms: int  # a claim lasts this long past its last heartbeat
    epoch: int = 0  # claims so far: 0 until the first
    instance_id: str | None = None
    worker_id: str | None = None
    claimed_at: int | None = None
    lease_expires_at: int | None = None
    checkpoint_data: Any = None
    checkpoint_seq: int = 0
    last_progress_at: int | None = None
    progress_percent: float | None = None
    progress_message: str | None = None
    # when it last became pending (created, released, lease expired): claim latency
    offered_at: int = 0


_JOB_FIELDS = frozenset(f.name for f in fields(JobState))


def job_to_json(job: JobState | None) -> dict[str, Any] | None:
    return asdict(job) if job is not None else None


def job_from_json(raw: dict[str, Any] | None) -> JobState | None:
    """The job :func:`job_to_json` wrote (unknown keys ignored, so a newer writer's
    extra fields do not stop an older reader)."""
    if raw is None:
        return None
    return JobState(**{k: v for k, v in raw.items() if k in _JOB_FIELDS})
