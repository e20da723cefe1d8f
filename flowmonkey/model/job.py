"""The public, read-only views of jobs (issue 12): a stateful handler's step attempt,
run by a worker.

:class:`JobRecord` is one job as the projection keeps it, ended jobs included;
:class:`JobSummary` is the open job an :class:`~flowmonkey.model.execution.Execution`
shows while it waits on it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from flowmonkey.model.base import FrozenModel


class JobStatus(StrEnum):
    PENDING = "pending"  # offered: any worker of its type may claim it
    CLAIMED = "claimed"  # a worker holds a live lease on it
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def is_ended(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.CLAIMED)


class JobSummary(FrozenModel):
    """An execution's open job, in brief (``Execution.job``)."""

    job_id: str
    type: str
    status: JobStatus
    epoch: int = 0
    worker_id: str | None = None
    progress_percent: float | None = None
    progress_message: str | None = None
    checkpoint_seq: int = 0


class JobRecord(FrozenModel):
    """One job, derived from its ``job.*`` events, as of its last one.

    ``epoch`` counts the claims so far (0 until the first); ``claims`` and
    ``lease_expiries`` count how often it was claimed and how often a claim's lease
    ran out. ``worker_id``/``instance_id`` name the claim that holds it now, or (an
    ended job) the last one; a job put back to pending has none.
    """

    job_id: str
    execution_id: str
    tenant_id: str | None = None
    flow_id: str | None = None
    step_id: str
    type: str
    attempt: int
    status: JobStatus
    epoch: int = 0
    worker_id: str | None = None
    instance_id: str | None = None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    checkpoint_seq: int = 0
    checkpoint_data: Any = None
    progress_percent: float | None = None
    progress_message: str | None = None
    lease_expires_at: datetime | None = None
    deadline_at: datetime
    heartbeat_ms: int
    timeout_ms: int
    created_at: datetime
    claimed_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime
    claims: int = Field(default=0, ge=0)
    lease_expiries: int = Field(default=0, ge=0)
