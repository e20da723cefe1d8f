"""The public, read-only view of an execution (FEATURES B1) and its parts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from flowmonkey.model.base import FrozenModel
from flowmonkey.model.job import JobSummary
from flowmonkey.model.limits import TimeoutConfig

CancellationSource = Literal["user", "system", "timeout", "parent"]


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_cancellable(self) -> bool:
        return self in CANCELLABLE_STATUSES


TERMINAL_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
CANCELLABLE_STATUSES = frozenset(
    {ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING}
)
RESTING_STATUSES = TERMINAL_STATUSES | {ExecutionStatus.WAITING}


class ExecutionError(FrozenModel):
    code: str
    message: str
    step_id: str | None = None
    details: Any = None
    timestamp: datetime | None = None


class Cancellation(FrozenModel):
    source: CancellationSource
    reason: str | None = None
    cancelled_at: datetime


class HistoryEntry(FrozenModel):
    """One step attempt, recorded when the engine runs with ``record_history``."""

    step_id: str
    handler_type: str
    outcome: str
    attempt: int = 1
    input: Any = None
    output: Any = None
    error: Any = None
    started_at: datetime
    completed_at: datetime
    duration_ms: int


class Execution(FrozenModel):
    """A snapshot of one execution, as of event ``seq``."""

    id: str
    flow_id: str
    flow_version: str
    status: ExecutionStatus
    current_step_id: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    history: list[HistoryEntry] = Field(default_factory=list)
    retry_attempts: dict[str, int] = Field(default_factory=dict)
    wake_at: datetime | None = None
    wait_reason: str | None = None
    wait_started_at: datetime | None = None
    resume_token: str | None = None
    # the job it waits on (a stateful handler's attempt, run by a worker), else None
    job: JobSummary | None = None
    error: ExecutionError | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    idempotency_expires_at: datetime | None = None
    tenant_id: str | None = None
    parent_execution_id: str | None = None
    children: list[str] = Field(default_factory=list)
    cancellation: Cancellation | None = None
    timeout_config: TimeoutConfig | None = None
    step_count: int = 0
    created_at: datetime
    updated_at: datetime
    seq: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal
