"""Request and response bodies. JSON is camelCase, as in the original's API; request
bodies also accept snake_case names, and refuse unknown fields (a typo is an error,
not a silently ignored option)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from flowmonkey.events.envelope import Event
from flowmonkey.model.base import FlowMonkeyModel
from flowmonkey.model.execution import Execution
from flowmonkey.model.flow import Flow
from flowmonkey.model.limits import TimeoutConfig
from flowmonkey.model.storable import UNSTORABLE, UnstorableValue, check_body
from flowmonkey.model.tables import TableDef
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


class CreateExecutionOut(FlowMonkeyModel):
    execution: Execution
    created: bool
    idempotency_hit: bool


class ExecutionPage(FlowMonkeyModel):
    items: list[Execution]
    next_cursor: str | None = None


class EventOut(FlowMonkeyModel):
    type: str
    version: int
    execution_id: str
    seq: int
    event_id: str
    timestamp: datetime
    tenant_id: str | None = None
    command_id: str | None = None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(type=event.type, version=event.version, execution_id=event.execution_id,
                   seq=event.seq, event_id=event.event_id, timestamp=event.timestamp,
                   tenant_id=event.tenant_id, command_id=event.command_id, data=event.data)


class HistoryOut(FlowMonkeyModel):
    execution_id: str
    events: list[EventOut]


class CancelOut(FlowMonkeyModel):
    execution_id: str
    cancelled: bool
    tokens_invalidated: int
    children_cancelled: int
    reason: str | None = None


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


class FlowOut(FlowMonkeyModel):
    flow: Flow
    versions: list[str]


class TableList(FlowMonkeyModel):
    items: list[TableDef]


class RowsOut(FlowMonkeyModel):
    table_id: str
    rows: list[Row]
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
