"""Request and response bodies. JSON is camelCase, as in the original's API; request
bodies also accept snake_case names, and refuse unknown fields (a typo is an error,
not a silently ignored option)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from flowmonkey.events.envelope import Event
from flowmonkey.model.base import FlowMonkeyModel
from flowmonkey.model.execution import Execution
from flowmonkey.model.flow import Flow
from flowmonkey.model.limits import TimeoutConfig
from flowmonkey.model.tables import TableDef
from flowmonkey.projections.base import Row

# ----------------------------------------------------------------------------- requests

# What the log's JSON codec (orjson) can encode: a larger integer would fail only when
# the command is published (a 500), and NaN or Infinity, which Python's JSON reader
# accepts, would silently become null.
_INT_RANGE = (-(2**63), 2**64 - 1)
# PostgreSQL stores no NUL in text or jsonb: one in a context would make the projection
# fail the whole batch (every tenant's events with it) instead of refusing one request.
_NUL = "\x00"


def check_json(value: Any) -> None:
    """Raise ValueError, naming the path, for a value the log or the projection cannot
    carry as given. Iterative: a deeply nested body must not exhaust the stack."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _NUL in item:
                raise ValueError(f"{path or 'value'}: a NUL character (\\u0000) cannot "
                                 "be stored")
            continue
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int) and not _INT_RANGE[0] <= item <= _INT_RANGE[1]:
            raise ValueError(f"{path or 'value'}: integer out of the 64-bit range")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{path or 'value'}: {item} is not a JSON number")
        if isinstance(item, dict):
            for k, v in item.items():
                name = f"{path}.{k}" if path else str(k)
                stack.extend([(f"{name} (its name)", k), (name, v)])
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))


class RequestModel(FlowMonkeyModel):
    """A request body: every value in it must fit the log and the projection (see
    :func:`check_json`)."""

    @model_validator(mode="after")
    def _values_fit_the_stores(self) -> Self:
        check_json(self.model_dump(by_alias=True))
        return self


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
