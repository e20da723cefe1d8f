"""``/v1/executions``: start, list, read, resume and cancel executions.

Every command carries the caller's tenant and every query is scoped to it: another
tenant's execution answers 404, exactly like one that does not exist.

The routes answering executions declare ``ExecutionOut`` (the OpenAPI schema) but write
their answer with :mod:`flowmonkey.api.execution_json`, which gives the same JSON
without validating a second model per execution.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from flowmonkey.api.deps import Caller, EngineDep, FlowRefresher, Flows
from flowmonkey.api.errors import ApiError, not_found
from flowmonkey.api.execution_json import execution_dict, json_response
from flowmonkey.api.schemas import (
    CancelOut,
    CancelRequest,
    CreateExecutionOut,
    CreateExecutionRequest,
    EventOut,
    ExecutionOut,
    ExecutionPage,
    HistoryOut,
    ResumeRequest,
    errors,
)
from flowmonkey.engine import CreateResult, Engine
from flowmonkey.errors import FlowNotFoundError
from flowmonkey.model.execution import Execution, ExecutionStatus

router = APIRouter(prefix="/v1/executions", tags=["executions"])

MAX_PAGE = 1000


async def _create(engine: Engine, flows: FlowRefresher, body: CreateExecutionRequest,
                  tenant_id: str | None) -> CreateResult:
    async def attempt() -> CreateResult:
        return await engine.create(
            body.flow_id, body.context, idempotency_key=body.idempotency_key,
            idempotency_window_ms=body.idempotency_window_ms, tenant_id=tenant_id,
            parent_execution_id=body.parent_execution_id, timeout=body.timeout,
            metadata=body.metadata, flow_version=body.version,
            allow_unpublished=body.allow_unpublished)

    try:
        return await attempt()
    except FlowNotFoundError:
        if not await flows.refresh():
            raise
        return await attempt()


def _check_hit(execution: Execution, flow_id: str, tenant_id: str | None) -> None:
    """Never hand over an execution of another tenant or flow as an idempotency hit.
    The kernel refuses such a hit itself (IDEMPOTENCY_KEY_CONFLICT); this second check
    keeps the API safe against a processor of an older version."""
    if (tenant_id is not None and execution.tenant_id != tenant_id) or \
            execution.flow_id != flow_id:
        raise ApiError(409, "IDEMPOTENCY_KEY_CONFLICT",
                       "this idempotency key is taken by another execution: choose another")


@router.post("", status_code=201, response_model=CreateExecutionOut,
             responses={200: {"model": CreateExecutionOut,
                              "description": "an idempotency key matched an execution "
                                             "started earlier: that one is returned"},
                        **errors(401, 404, 409, 422, 504)})
async def create_execution(body: CreateExecutionRequest, engine: EngineDep, caller: Caller,
                           flows: Flows) -> Response:
    """Start an execution of a flow (201), or return the one an idempotency key names
    (200, ``idempotencyHit: true``)."""
    parent = body.parent_execution_id
    if parent is not None and await engine.get(parent, tenant_id=caller.tenant_id) is None:
        raise not_found("execution", parent)
    result = await _create(engine, flows, body, caller.tenant_id)
    if result.idempotency_hit:
        _check_hit(result.execution, body.flow_id, caller.tenant_id)
    # CreateExecutionOut's JSON
    return json_response({"execution": execution_dict(result.execution),
                          "created": result.created,
                          "idempotencyHit": result.idempotency_hit},
                         200 if result.idempotency_hit else 201,
                         {"Location": f"/v1/executions/{result.execution.id}"})


@router.get("", response_model=ExecutionPage, responses=errors(400, 401, 422))
async def list_executions(
    engine: EngineDep, caller: Caller,
    status: ExecutionStatus | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    parent_execution_id: Annotated[str | None, Query(alias="parentExecutionId")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
) -> Response:
    """Executions, newest first; pass ``nextCursor`` back as ``cursor`` for the next page
    (``null`` on the last one)."""
    page = await engine.list(tenant_id=caller.tenant_id, status=status, flow_id=flow_id,
                             parent_execution_id=parent_execution_id, limit=limit,
                             cursor=cursor)
    # ExecutionPage's JSON
    return json_response({"items": [execution_dict(e) for e in page.items],
                          "nextCursor": page.next_cursor})


async def _visible(engine: Engine, execution_id: str, tenant_id: str | None) -> Execution:
    execution = await engine.get(execution_id, tenant_id=tenant_id)
    if execution is None:
        raise not_found("execution", execution_id)
    return execution


@router.get("/{execution_id}", response_model=ExecutionOut, responses=errors(401, 404))
async def get_execution(execution_id: str, engine: EngineDep, caller: Caller) -> Response:
    return json_response(execution_dict(await _visible(engine, execution_id,
                                                       caller.tenant_id)))


@router.get("/{execution_id}/events", response_model=HistoryOut, responses=errors(401, 404))
async def execution_events(execution_id: str, engine: EngineDep,
                           caller: Caller) -> HistoryOut:
    """The execution's events (its audit trail), in ``seq`` order."""
    await _visible(engine, execution_id, caller.tenant_id)
    events = await engine.history(execution_id, tenant_id=caller.tenant_id)
    return HistoryOut(execution_id=execution_id, events=[EventOut.of(e) for e in events])


@router.get("/{execution_id}/state", response_model=ExecutionOut,
            responses=errors(401, 404, 422))
async def execution_state(execution_id: str, engine: EngineDep, caller: Caller,
                          seq: Annotated[int, Query(ge=1, description="an event's seq")]
                          ) -> Response:
    """The execution as it was right after its event ``seq`` (rebuilt from its events)."""
    execution = await _visible(engine, execution_id, caller.tenant_id)
    if seq > execution.seq:
        raise ApiError(404, "EVENT_NOT_FOUND",
                       f"execution {execution_id!r} has events 1 to {execution.seq}: there "
                       f"is no event {seq}")
    state = await engine.projection.state_at(execution_id, seq, tenant_id=caller.tenant_id)
    if state is None:
        raise ApiError(404, "EVENT_NOT_FOUND",
                       f"execution {execution_id!r} has no state at event {seq}")
    return json_response(execution_dict(state))


@router.post("/{execution_id}/resume", response_model=ExecutionOut,
             responses=errors(400, 401, 404, 409, 422, 504))
async def resume_execution(execution_id: str, body: ResumeRequest, engine: EngineDep,
                           caller: Caller) -> Response:
    """Resume a waiting execution with its resume token (each token works once): 400
    ``INVALID_TOKEN`` for a wrong one; 409 ``TOKEN_USED``, ``TOKEN_EXPIRED``,
    ``TOKEN_REVOKED`` or ``NOT_WAITING``."""
    return json_response(execution_dict(await engine.resume(
        execution_id, body.token, body.data, tenant_id=caller.tenant_id)))


@router.post("/{execution_id}/cancel", response_model=CancelOut,
             responses=errors(401, 404, 409, 422, 504))
async def cancel_execution(execution_id: str, engine: EngineDep, caller: Caller,
                           body: CancelRequest | None = None) -> CancelOut:
    """Cancel a pending, running or waiting execution and, in cascade, its children; 409
    ``NOT_CANCELLABLE`` when it has already ended."""
    reason = body.reason if body is not None else None
    result = await engine.cancel(execution_id, "user", reason, tenant_id=caller.tenant_id)
    if not result.cancelled:
        # the engine's refusal has no code: tell an unknown (or hidden) execution from
        # one that cannot be cancelled any more
        await _visible(engine, execution_id, caller.tenant_id)
        raise ApiError(409, "NOT_CANCELLABLE", result.reason or
                       f"execution {execution_id!r} cannot be cancelled")
    return CancelOut(execution_id=execution_id, cancelled=True,
                     tokens_invalidated=result.tokens_invalidated,
                     children_cancelled=result.children_cancelled, reason=result.reason)
