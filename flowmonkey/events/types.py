"""The schema of every event's ``data``, one frozen, versioned pydantic model per type.

Events travel as one envelope (:class:`~flowmonkey.events.envelope.Event`) whose
``data`` follows the model registered here for ``(type, version)``. The kernel builds
data it trusts without validating it on the hot path; these models are the contract
for consumers in any language, are checked by the tests against everything the kernel
emits, and give typed access through :func:`payload`. A changed shape is a new version
with an upcaster (``events/upcasting.py``), never an edit of an old model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExecutionCreated(EventData):
    flow_id: str
    flow_version: str
    context: dict[str, Any]
    options: dict[str, Any]
    parent_execution_id: str | None = None
    parent_step_id: str | None = None
    # sub-flow levels above it (absent: 0, a caller's execution)
    depth: int | None = None
    metadata: dict[str, Any] | None = None
    timeout: dict[str, Any] | None = None
    idempotency_key: str | None = None
    idempotency_scope: str | None = None
    idempotency_expires_at: int | None = None


class ExecutionStarted(EventData):
    step_id: str


class StepStarted(EventData):
    step_id: str
    step_type: str
    attempt: int
    attempt_id: str
    input: Any = None


class StepCompleted(EventData):
    step_id: str
    step_type: str
    attempt: int
    duration_ms: int
    outcome: Literal["success", "failure", "wait"]
    output: Any = None
    error: dict[str, Any] | None = None
    writes: list[list[Any]] | None = None
    output_key: str | None = None


class StepTimeout(EventData):
    step_id: str
    timeout_ms: int | None
    attempt: int


class StepRetry(EventData):
    step_id: str
    attempt: int
    max_attempts: int
    backoff_ms: int
    error: dict[str, Any]


class Transition(EventData):
    from_step_id: str
    to_step_id: str
    outcome: str


class ExecutionWaiting(EventData):
    step_id: str
    kind: Literal["time", "signal", "retry", "child", "job"]
    wake_at: int | None = None
    reason: str | None = None
    child_execution_id: str | None = None


class ExecutionResumed(EventData):
    step_id: str
    reason: Literal["wake", "retry", "signal", "child", "job"]
    data: Any = None
    output_key: str | None = None
    merge: bool | None = None


class ExecutionCompleted(EventData):
    step_id: str
    total_steps: int


class ExecutionFailed(EventData):
    code: str
    message: str
    step_id: str | None
    details: Any = None


class ExecutionCancelling(EventData):
    source: str
    reason: str | None


class ExecutionCancelled(EventData):
    source: str
    reason: str | None
    step_id: str | None
    tokens_invalidated: int
    children_cancelled: int


class IdempotencyHit(EventData):
    idempotency_key: str
    flow_id: str
    duplicate_execution_id: str


class TokenCreated(EventData):
    token: str
    step_id: str
    expires_at: int | None


class TokenUsed(EventData):
    token: str


class TokenRevoked(EventData):
    token: str
    reason: str | None


class TokensCleaned(EventData):
    tokens: list[str]
    count: int


class ChildStarted(EventData):
    child_execution_id: str
    flow_id: str
    step_id: str
    wait: bool


class ChildAttached(EventData):
    child_execution_id: str
    flow_id: str | None = None


class ChildFinished(EventData):
    child_execution_id: str
    status: str
    error: dict[str, Any] | None = None


class PipeRow(EventData):
    pipe_id: str
    table_id: str
    step_id: str
    flow_id: str
    outcome: Literal["success", "failure"]
    row: dict[str, Any]


class JobCreated(EventData):
    job_id: str
    step_id: str
    step_type: str
    attempt: int
    attempt_id: str
    input: Any = None
    timeout_ms: int
    heartbeat_ms: int
    lease_ms: int
    deadline_at: int


class JobClaimed(EventData):
    job_id: str
    worker_id: str
    instance_id: str
    epoch: int
    lease_expires_at: int
    claim_latency_ms: int


class JobHeartbeat(EventData):
    job_id: str
    instance_id: str
    epoch: int
    lease_expires_at: int


class JobProgress(EventData):
    job_id: str
    instance_id: str
    percent: float
    message: str | None = None


class JobCheckpoint(EventData):
    job_id: str
    instance_id: str
    epoch: int
    checkpoint_seq: int
    data: Any = None


class JobCompleted(EventData):
    job_id: str
    instance_id: str
    epoch: int
    output: Any = None
    duration_ms: int


class JobFailed(EventData):
    job_id: str
    instance_id: str | None
    epoch: int
    error: dict[str, Any]
    duration_ms: int


class JobSuperseded(EventData):
    job_id: str
    instance_id: str
    # the refused writer's epoch, when known (its own lease just ran out); None when
    # another claim replaced it
    epoch: int | None
    command_type: str
    command_id: str
    current_instance_id: str | None
    current_epoch: int


class JobLeaseExpired(EventData):
    job_id: str
    instance_id: str | None
    epoch: int


class JobReleased(EventData):
    job_id: str
    instance_id: str
    epoch: int
    reason: str | None = None


class JobTimedOut(EventData):
    job_id: str
    timeout_ms: int
    instance_id: str | None


class JobCancelled(EventData):
    job_id: str
    reason: str | None


class TriggerSource(EventData):
    """What a trigger fired for: ``kind`` and the arrival's dedup ``key`` (a delivery
    id, ``<execution>:<seq>``, ``<topic>:<partition>:<offset>``, a tick in ms)."""

    kind: Literal["webhook", "event", "topic", "manual", "schedule"]
    key: str


class TriggerRegistered(EventData):
    # the definition as registered (camelCase JSON; a webhook's secret is only a name)
    definition: dict[str, Any]
    by: str | None = None
    changed: bool
    # a schedule's next tick (ms), None when it has none (not a schedule, disabled)
    next_fire_at: int | None = None


class TriggerEnabled(EventData):
    by: str | None = None
    reason: str | None = None
    # false: it was enabled already (the command is answered, nothing changes)
    changed: bool = True
    next_fire_at: int | None = None


class TriggerDisabled(EventData):
    by: str | None = None
    reason: str | None = None
    changed: bool = True


class TriggerFired(EventData):
    execution_id: str
    flow_id: str
    flow_version: str | None = None
    source: TriggerSource
    idempotency_key: str | None = None
    # schedules: the tick (ms) and, on the tick's last event, the next tick
    tick: int | None = None
    next_fire_at: int | None = None


class TriggerSkipped(EventData):
    # overlap: a run of the trigger is still active; catch_up: ticks missed (from
    # ``since`` to ``tick``, both ms) that the catch-up policy does not fire
    reason: Literal["overlap", "catch_up"]
    tick: int
    since: int | None = None
    active: str | None = None  # (overlap) the latest active run
    next_fire_at: int | None = None


class TriggerFailed(EventData):
    code: str
    message: str
    source: TriggerSource
    tick: int | None = None
    next_fire_at: int | None = None


class TriggerRunEnded(EventData):
    execution_id: str
    status: str


class FormRegistered(EventData):
    # the definition as registered (camelCase JSON; a captcha's secret is only a name)
    definition: dict[str, Any]
    by: str | None = None
    changed: bool


class FormError(EventData):
    """One reason a submission is invalid: where (a JSON pointer into the submitted
    data, "" for the whole) and what."""

    pointer: str
    message: str


class FormSubmitted(EventData):
    submission_id: str
    # the execution the submission started, or (``resumed``) the one it resumes
    execution_id: str
    # the sanitised data
    data: dict[str, Any]
    resumed: bool = False
    # a keyed hash of the client's address (never the address), and of the content
    address_key: str | None = None
    content_hash: str


class FormRejected(EventData):
    submission_id: str
    reason: Literal["disabled", "spam", "invalid", "captcha_failed", "rate_limited",
                    "duplicate"]
    errors: list[FormError] | None = None
    # the sanitised data of an invalid submission (kept for the record)
    data: dict[str, Any] | None = None
    # rate_limited: when one more submission fits
    retry_after_ms: int | None = None
    # duplicate: the first submission of that content, and its execution
    first_submission_id: str | None = None
    execution_id: str | None = None
    address_key: str | None = None
    content_hash: str


class EmailSent(EventData):
    """The ``email-reply`` step's mail was accepted by its SMTP server."""

    step_id: str
    to: list[str]
    subject: str
    message_id: str


class EmailReceived(EventData):
    """A reply to the step's mail resumed it (the inbound email endpoint)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    step_id: str
    from_: str | None = Field(default=None, alias="from")
    subject: str | None = None


class CommandRejected(EventData):
    command_id: str
    command_type: str
    code: str
    reason: str


EVENT_SCHEMAS: dict[tuple[str, int], type[EventData]] = {
    (n.EXECUTION_CREATED, 1): ExecutionCreated,
    (n.EXECUTION_STARTED, 1): ExecutionStarted,
    (n.STEP_STARTED, 1): StepStarted,
    (n.STEP_COMPLETED, 1): StepCompleted,
    (n.STEP_TIMEOUT, 1): StepTimeout,
    (n.STEP_RETRY, 1): StepRetry,
    (n.TRANSITION, 1): Transition,
    (n.EXECUTION_WAITING, 1): ExecutionWaiting,
    (n.EXECUTION_RESUMED, 1): ExecutionResumed,
    (n.EXECUTION_COMPLETED, 1): ExecutionCompleted,
    (n.EXECUTION_FAILED, 1): ExecutionFailed,
    (n.EXECUTION_CANCELLING, 1): ExecutionCancelling,
    (n.EXECUTION_CANCELLED, 1): ExecutionCancelled,
    (n.IDEMPOTENCY_HIT, 1): IdempotencyHit,
    (n.TOKEN_CREATED, 1): TokenCreated,
    (n.TOKEN_USED, 1): TokenUsed,
    (n.TOKEN_REVOKED, 1): TokenRevoked,
    (n.TOKENS_CLEANED, 1): TokensCleaned,
    (n.CHILD_STARTED, 1): ChildStarted,
    (n.CHILD_ATTACHED, 1): ChildAttached,
    (n.CHILD_FINISHED, 1): ChildFinished,
    (n.PIPE_ROW, 1): PipeRow,
    (n.COMMAND_REJECTED, 1): CommandRejected,
    (n.JOB_CREATED, 1): JobCreated,
    (n.JOB_CLAIMED, 1): JobClaimed,
    (n.JOB_HEARTBEAT, 1): JobHeartbeat,
    (n.JOB_PROGRESS, 1): JobProgress,
    (n.JOB_CHECKPOINT, 1): JobCheckpoint,
    (n.JOB_COMPLETED, 1): JobCompleted,
    (n.JOB_FAILED, 1): JobFailed,
    (n.JOB_SUPERSEDED, 1): JobSuperseded,
    (n.JOB_LEASE_EXPIRED, 1): JobLeaseExpired,
    (n.JOB_RELEASED, 1): JobReleased,
    (n.JOB_TIMED_OUT, 1): JobTimedOut,
    (n.JOB_CANCELLED, 1): JobCancelled,
    (n.TRIGGER_REGISTERED, 1): TriggerRegistered,
    (n.TRIGGER_ENABLED, 1): TriggerEnabled,
    (n.TRIGGER_DISABLED, 1): TriggerDisabled,
    (n.TRIGGER_FIRED, 1): TriggerFired,
    (n.TRIGGER_SKIPPED, 1): TriggerSkipped,
    (n.TRIGGER_FAILED, 1): TriggerFailed,
    (n.TRIGGER_RUN_ENDED, 1): TriggerRunEnded,
    (n.FORM_REGISTERED, 1): FormRegistered,
    (n.FORM_SUBMITTED, 1): FormSubmitted,
    (n.FORM_REJECTED, 1): FormRejected,
    (n.EMAIL_SENT, 1): EmailSent,
    (n.EMAIL_RECEIVED, 1): EmailReceived,
}


def payload(event: Event) -> EventData:
    """The event's data validated into its typed model (KeyError for an unknown type)."""
    return EVENT_SCHEMAS[(event.type, event.version)].model_validate(event.data)


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every event type's data, for consumers in other languages."""
    return {f"{type_}@v{version}": model.model_json_schema()
            for (type_, version), model in EVENT_SCHEMAS.items()}
