"""Execution and partition state: what ``apply`` builds and ``decide`` reads.

State objects are mutated only by appliers (``kernel.apply``), and appliers replace
containers (context, history, tokens, …) instead of changing them in place. So a
``clone()`` is cheap (shallow) and stays independent of the original: ``decide``
works on clones and never touches the state it was given.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any

from flowmonkey.events.envelope import ms_to_datetime
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.form_state import FormState
from flowmonkey.kernel.job_state import JobState
from flowmonkey.kernel.trigger_state import TriggerState
from flowmonkey.model.execution import (
    Cancellation,
    Execution,
    ExecutionError,
    ExecutionStatus,
    HistoryEntry,
)
from flowmonkey.model.job import JobStatus, JobSummary
from flowmonkey.model.limits import (
    DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_SUBFLOW_DEPTH,
    ContextLimits,
    TimeoutConfig,
)

# Wait kinds: why an execution is waiting, and so what may end the wait.
WAIT_TIME = "time"
WAIT_SIGNAL = "signal"
WAIT_RETRY = "retry"
WAIT_CHILD = "child"
WAIT_JOB = "job"  # a stateful handler's attempt, run by a worker (kernel/jobs.py)


@dataclass(slots=True)
class TokenState:
    token: str
    status: str  # active | used | revoked | expired
    created_at: int
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class ExecutionOptions:
    """Engine options pinned on the execution when it is created (shared between
    executions with the same options, hence frozen)."""

    record_history: bool = False
    max_steps: int = 1000
    limits: ContextLimits = field(default_factory=ContextLimits)
    # bounds on sub-flows (kernel.limits): levels of children below the root, and
    # children one execution may start in its life
    max_subflow_depth: int = DEFAULT_MAX_SUBFLOW_DEPTH
    max_children: int = DEFAULT_MAX_CHILDREN


@dataclass(slots=True)
class ExecutionState:
    id: str
    flow_id: str
    flow_version: str
    tenant_id: str | None
    created_at: int
    options: ExecutionOptions
    status: ExecutionStatus = ExecutionStatus.PENDING
    seq: int = 0
    updated_at: int = 0
    current_step_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    retry_attempts: dict[str, int] = field(default_factory=dict)
    step_count: int = 0
    # the step attempt in flight (status running) — results for other attempts are stale
    attempt: int = 0
    attempt_id: str | None = None
    step_started_at: int = 0
    step_input: Any = None
    # waiting
    wait_kind: str | None = None
    wake_at: int | None = None
    wait_started_at: int | None = None
    wait_reason: str | None = None
    wait_child_id: str | None = None
    resume_token: str | None = None
    # a signal wait's end (its token's expiry); kept when the token is revoked, so the
    # wait still times out instead of being stranded
    signal_deadline: int | None = None
    tokens: dict[str, TokenState] = field(default_factory=dict)
    # links
    parent_execution_id: str | None = None
    parent_step_id: str | None = None
    children: dict[str, str] = field(default_factory=dict)  # child id -> status
    depth: int = 0  # levels of sub-flow parents above it (0: started by a caller)
    # ends
    error: dict[str, Any] | None = None
    cancellation: dict[str, Any] | None = None
    timeout: TimeoutConfig | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    idempotency_expires_at: int | None = None
    # the open job (a stateful handler's attempt) and how the last few jobs ended
    # (job id -> status), so a late worker is told why its job is gone
    job: JobState | None = None
    ended_jobs: dict[str, str] = field(default_factory=dict)

    def clone(self) -> ExecutionState:
        # All fields at once (one C call) into the generated __init__: several times
        # faster than copying slot by slot, and decide clones a state for every command.
        return ExecutionState(*_all_fields(self))

    @property
    def is_terminal(self) -> bool:
        return self.status in _TERMINAL

    def retired(self) -> ExecutionState:
        """A copy without what no decision about an ended execution reads.

        Once an execution has ended, every command about it is refused or ignored, or
        (an idempotency hit) adds an event that changes only ``seq``; those decisions
        read its id, tenant, status, seq and tokens, never its context, history or step
        data. A processor keeps ended executions this way so its memory, and its
        snapshots, do not grow with every context it ever held (the projection keeps
        the full state). ``kernel.apply.replay`` still gives the full state.
        """
        slim = self.clone()
        slim.context = {}
        slim.history = ()
        slim.retry_attempts = {}
        slim.step_input = None
        slim.metadata = None
        slim.job = None  # (an ended execution has no open job; ended_jobs stays)
        return slim

    def active_tokens(self) -> list[str]:
        return [t.token for t in self.tokens.values() if t.status == "active"]

    def active_children(self) -> list[str]:
        return [cid for cid, status in self.children.items() if status == "active"]

    def to_execution(self) -> Execution:
        """The public snapshot (validated construction is skipped: we built the data).

        It is the caller's own: what it holds of the state (context, metadata, history,
        error details) is copied, so changing it never changes the state, nor what the
        next snapshot shows."""
        dt = ms_to_datetime
        return _execution(
            id=self.id,
            flow_id=self.flow_id,
            flow_version=self.flow_version,
            status=self.status,
            current_step_id=self.current_step_id,
            context=private_copy(self.context),
            history=[_history_entry(h) for h in self.history],
            retry_attempts=dict(self.retry_attempts),
            wake_at=dt(self.wake_at) if self.wake_at is not None else None,
            wait_reason=self.wait_reason,
            wait_started_at=dt(self.wait_started_at) if self.wait_started_at is not None
            else None,
            resume_token=self.resume_token,
            job=_job_summary(self.job) if self.job is not None else None,
            error=ExecutionError.model_construct(
                code=self.error["code"], message=self.error["message"],
                step_id=self.error.get("step_id"),
                details=private_copy(self.error.get("details")),
                timestamp=dt(self.error["timestamp"]) if self.error.get("timestamp") else None,
            ) if self.error else None,
            metadata=private_copy(self.metadata),
            idempotency_key=self.idempotency_key,
            idempotency_expires_at=dt(self.idempotency_expires_at)
            if self.idempotency_expires_at is not None else None,
            tenant_id=self.tenant_id,
            parent_execution_id=self.parent_execution_id,
            children=list(self.children),
            cancellation=Cancellation.model_construct(
                source=self.cancellation["source"], reason=self.cancellation.get("reason"),
                cancelled_at=dt(self.cancellation["cancelled_at"]),
            ) if self.cancellation else None,
            timeout_config=self.timeout,
            step_count=self.step_count,
            created_at=dt(self.created_at),
            updated_at=dt(self.updated_at),
            seq=self.seq,
        )


_SLOTS = tuple(ExecutionState.__slots__)
_EXECUTION_FIELDS = tuple(Execution.model_fields)
_set = object.__setattr__


def _execution(**values: Any) -> Execution:
    """``Execution.model_construct(**values)`` for values naming every field, in field
    order: what model_construct leaves behind, without its per-field bookkeeping (it
    costs ~20 µs, and every create, get and list builds snapshots)."""
    execution = Execution.__new__(Execution)
    _set(execution, "__dict__", values)
    _set(execution, "__pydantic_fields_set__", set(_EXECUTION_FIELDS))
    _set(execution, "__pydantic_extra__", None)
    _set(execution, "__pydantic_private__", None)
    return execution
# __init__'s parameters, in order: every field is an init field, so positional works
_all_fields = operator.attrgetter(*(f.name for f in fields(ExecutionState)))
_TERMINAL = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


def _job_summary(job: JobState) -> JobSummary:
    return JobSummary.model_construct(
        job_id=job.job_id, type=job.type, status=JobStatus(job.status), epoch=job.epoch,
        worker_id=job.worker_id, progress_percent=job.progress_percent,
        progress_message=job.progress_message, checkpoint_seq=job.checkpoint_seq)


def _history_entry(raw: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry.model_construct(
        step_id=raw["step_id"],
        handler_type=raw["handler_type"],
        outcome=raw["outcome"],
        attempt=raw.get("attempt", 1),
        input=private_copy(raw.get("input")),
        output=private_copy(raw.get("output")),
        error=private_copy(raw.get("error")),
        started_at=ms_to_datetime(raw["started_at"]),
        completed_at=ms_to_datetime(raw["completed_at"]),
        duration_ms=raw["duration_ms"],
    )


SEEN_COMMANDS_KEPT = 100_000


@dataclass(slots=True)
class PartitionState:
    """Everything one partition's processor knows, all of it derived from events."""

    executions: dict[str, ExecutionState] = field(default_factory=dict)
    # idempotency scope -> (execution id, expires at ms)
    idempotency: dict[str, tuple[str, int]] = field(default_factory=dict)
    # ids of recently decided commands, for dedup of redelivered commands
    seen_commands: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # ids of ended executions no longer kept (kernel.apply.forget_ended): only the id,
    # so that a start cannot take one again and collide with its history
    forgotten: set[str] = field(default_factory=set)
    # (forget at ms, execution id) of ended executions, a heap; an entry may be early
    # (the execution changed since), never late: it is checked again when it comes up
    # (left out of ==: an index whose stale entries depend on how it was built)
    ending: list[tuple[int, str]] = field(default_factory=list, compare=False)
    # the triggers of this partition, by entity id ("trigger:<id>"; kernel/triggers.py)
    triggers: dict[str, TriggerState] = field(default_factory=dict)
    # the forms of this partition, by entity id ("form:<id>"; kernel/forms.py)
    forms: dict[str, FormState] = field(default_factory=dict)

    def note_command(self, command_id: str) -> None:
        seen = self.seen_commands
        if command_id in seen:
            return
        seen[command_id] = None
        if len(seen) > SEEN_COMMANDS_KEPT:
            seen.popitem(last=False)
