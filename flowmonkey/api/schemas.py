"""Request and response bodies.

Conventions, the same in every answer: the engine's keys are camelCase (event ``data``
too, see :mod:`flowmonkey.api.event_data`; docs/compatibility.md), while the
user's values (contexts, outputs, resume data, metadata, row values, error details) keep
their keys as given; every point in time is an ISO-8601 UTC string with milliseconds
and ``Z`` (``2026-01-31T12:00:00.123Z``, OpenAPI ``format: date-time``). Request bodies
also accept snake_case names, and refuse unknown fields (a typo is an error, not a
silently ignored option)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from flowmonkey.api.event_data import api_event_data
from flowmonkey.api.times import UtcDateTime, iso_utc_ms
from flowmonkey.events.envelope import Event
from flowmonkey.model.base import FlowMonkeyModel
from flowmonkey.model.execution import Cancellation, Execution, ExecutionError, HistoryEntry
from flowmonkey.model.flow import Flow
from flowmonkey.model.job import JobRecord
from flowmonkey.model.limits import TimeoutConfig
from flowmonkey.model.storable import UNSTORABLE, UnstorableValue, check_body
from flowmonkey.model.tables import TableDef
from flowmonkey.model.trigger_record import TriggerRecord
from flowmonkey.projections.base import Row

# ----------------------------------------------------------------------------- requests


class RequestModel(FlowMonkeyModel):
    """A request body: every value in it must fit the log and the projection (see
    :mod:`flowmonkey.model.storable`); one that does not is a 422 naming it."""

    @model_validator(mode="before")
    @classmethod
    def _values_fit_the_stores(cls, data: Any) -> Any:
        # before the fields are read: every value and key as the client sent it, the
        # unknown fields' too, is named by the client's own path
        if not isinstance(data, dict):
            return data  # not an object: the model says so
        try:
            check_body(data)
        except UnstorableValue as exc:
            # its own type, so the error answer names the field by its path (see
            # flowmonkey.api.errors.validation_problems), not the body as a whole
            raise PydanticCustomError(UNSTORABLE, "{reason}",
                                      {"field": exc.path, "reason": exc.reason}) from None
        return data


class CreateExecutionRequest(RequestModel):
    flow_id: str = Field(min_length=1, description="the flow to run")
    context: dict[str, Any] = Field(default_factory=dict,
                                    description="the execution's initial context")
    version: str | None = Field(default=None, min_length=1,
                                description="a flow version; default: the newest published")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=500,
        description="a repeat with the same key (same flow, same tenant) inside the window "
                    "returns the existing execution instead of starting another")
    idempotency_window_ms: int | None = Field(default=None, gt=0)
    parent_execution_id: str | None = Field(default=None, min_length=1)
    timeout: TimeoutConfig | None = None
    metadata: dict[str, Any] | None = None
    allow_unpublished: bool = Field(default=False,
                                    description="run a draft or archived flow version")


class ResumeRequest(RequestModel):
    token: str = Field(min_length=1, description="the resume token of the waiting execution")
    data: Any = Field(default=None, description="given to the step that waited")


class CancelRequest(RequestModel):
    reason: str | None = Field(default=None, max_length=2000)


# ---------------------------------------------------------------------------- responses


class HealthOut(FlowMonkeyModel):
    status: Literal["ok", "unavailable"]
    reason: str | None = None


class ExecutionErrorOut(ExecutionError):
    timestamp: UtcDateTime | None = None


class CancellationOut(Cancellation):
    cancelled_at: UtcDateTime


class HistoryEntryOut(HistoryEntry):
    started_at: UtcDateTime
    completed_at: UtcDateTime


class ExecutionOut(Execution):
    """An execution, as of its event ``seq``: keys camelCase, points in time ISO-8601
    UTC strings; ``context`` and ``metadata`` are the user's, keys as given."""

    history: list[HistoryEntryOut] = Field(default_factory=list)  # type: ignore[assignment]
    wake_at: UtcDateTime | None = None
    wait_started_at: UtcDateTime | None = None
    error: ExecutionErrorOut | None = None
    idempotency_expires_at: UtcDateTime | None = None
    cancellation: CancellationOut | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @classmethod
    def of(cls, execution: Execution) -> ExecutionOut:
        return cls.model_validate(execution, from_attributes=True)


class CreateExecutionOut(FlowMonkeyModel):
    execution: ExecutionOut
    created: bool
    idempotency_hit: bool


class ExecutionPage(FlowMonkeyModel):
    items: list[ExecutionOut]
    next_cursor: str | None = None


class JobOut(JobRecord):
    """A job (a stateful handler's step attempt, run by a worker), open or ended: keys
    camelCase, points in time ISO-8601 UTC strings; ``input``, ``output``,
    ``checkpointData`` and ``error.details`` are the user's, keys as given."""

    lease_expires_at: UtcDateTime | None = None
    deadline_at: UtcDateTime
    created_at: UtcDateTime
    claimed_at: UtcDateTime | None = None
    ended_at: UtcDateTime | None = None
    updated_at: UtcDateTime

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        return cls.model_validate(job, from_attributes=True)


class JobPage(FlowMonkeyModel):
    items: list[JobOut]
    next_cursor: str | None = None


class EventOut(FlowMonkeyModel):
    type: str = Field(description="the event type, e.g. execution.created")
    version: int = Field(description="the version of the type's data schema")
    execution_id: str
    seq: int = Field(description="the event's number in its execution: 1, 2, 3 …")
    event_id: str
    timestamp: UtcDateTime = Field(
        description="when the event happened: ISO-8601, UTC, milliseconds, Z")
    tenant_id: str | None = None
    command_id: str | None = None
    data: dict[str, Any] = Field(
        description="the type's fields, camelCase like the rest of the API (stepId, "
                    "wakeAt …), points in time as ISO-8601 UTC strings; the user's values "
                    "in it (context, input, output, resume data, metadata, row, error "
                    "details) keep their keys as given")

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(type=event.type, version=event.version, execution_id=event.execution_id,
                   seq=event.seq, event_id=event.event_id, timestamp=event.timestamp,
                   tenant_id=event.tenant_id, command_id=event.command_id,
                   data=api_event_data(event))


class HistoryOut(FlowMonkeyModel):
    execution_id: str
    events: list[EventOut]


class CancelOut(FlowMonkeyModel):
    execution_id: str
    cancelled: bool
    tokens_invalidated: int
    children_cancelled: int
    reason: str | None = None


def _iso_times(values: dict[str, Any]) -> dict[str, Any]:
    """A definition's fields with its epoch-millisecond ``created_at`` and ``updated_at``
    as ISO-8601 UTC strings."""
    for name in ("created_at", "updated_at"):
        if values.get(name) is not None:
            values[name] = iso_utc_ms(values[name])
    return values


class FlowSummary(FlowMonkeyModel):
    id: str
    version: str
    name: str | None = None
    description: str | None = None
    status: str
    tags: list[str]

    @classmethod
    def of(cls, flow: Flow) -> FlowSummary:
        return cls(id=flow.id, version=flow.version, name=flow.name,
                   description=flow.description, status=flow.effective_status,
                   tags=list(flow.tags))


class FlowList(FlowMonkeyModel):
    items: list[FlowSummary]


class FlowDefinitionOut(Flow):
    """A flow definition; its points in time are ISO-8601 UTC strings, as everywhere in
    the API (the definition itself keeps them in epoch milliseconds)."""

    created_at: UtcDateTime | None = None  # type: ignore[assignment]
    updated_at: UtcDateTime | None = None  # type: ignore[assignment]

    @classmethod
    def of(cls, flow: Flow) -> FlowDefinitionOut:
        return cls.model_validate(_iso_times(dict(flow)))


class FlowOut(FlowMonkeyModel):
    flow: FlowDefinitionOut
    versions: list[str]


class TableOut(TableDef):
    """A table definition; its points in time are ISO-8601 UTC strings, as everywhere
    in the API (the definition itself keeps them in epoch milliseconds)."""

    created_at: UtcDateTime | None = None  # type: ignore[assignment]
    updated_at: UtcDateTime | None = None  # type: ignore[assignment]

    @classmethod
    def of(cls, table: TableDef) -> TableOut:
        return cls.model_validate(_iso_times(dict(table)))


class TableList(FlowMonkeyModel):
    items: list[TableOut]


class RowOut(Row):
    """A table row; ``data`` holds its values by column id, as written."""

    created_at: UtcDateTime
    updated_at: UtcDateTime


class RowsOut(FlowMonkeyModel):
    table_id: str
    rows: list[RowOut]
    total: int


class ErrorDetail(FlowMonkeyModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(FlowMonkeyModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses (the body is always :class:`ErrorOut`)."""
    return {status: {"model": ErrorOut} for status in statuses}


# ----------------------------------------------------------------------------- triggers


class TriggerOut(TriggerRecord):
    """A registered trigger: its definition (camelCase as written; a webhook's secret is
    only the vault secret's name), whether it is enabled, counts of what it did, its last
    fire and failure and, for an enabled schedule, its next tick."""

    last_fired_at: UtcDateTime | None = None
    last_failed_at: UtcDateTime | None = None
    next_fire_at: UtcDateTime | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @classmethod
    def of(cls, record: TriggerRecord) -> TriggerOut:
        return cls.model_validate(record, from_attributes=True)


class TriggerPage(FlowMonkeyModel):
    items: list[TriggerOut]
    next_cursor: str | None = None


class NextFireOut(FlowMonkeyModel):
    """A schedule's next ticks (computed from its definition; a paused schedule's are
    what it would fire once resumed)."""

    trigger_id: str
    enabled: bool
    timezone: str
    times: list[UtcDateTime]


class TriggerChangeRequest(RequestModel):
    """Why a trigger is paused or resumed (kept in its audit trail)."""

    reason: str | None = Field(default=None, max_length=1_000)


class WebhookAccepted(FlowMonkeyModel):
    """A webhook delivery that started (or, a retried one, had started) an execution."""

    execution_id: str
    trigger_id: str
    duplicate: bool = Field(description="true when this delivery was seen before: the "
                                        "execution is the one it started then")


class InboundEmailResumed(FlowMonkeyModel):
    """An inbound email that resumed the ``email-reply`` step waiting for it."""

    execution_id: str
    status: str = Field(description="the execution's status right after the resume")
