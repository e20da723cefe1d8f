"""The executions pages: the list (filters, search, counts, cursor paging, live rows)
and one execution (header, flow graph, paged timeline, time travel over ``seq``,
verify against the log, resume and cancel).

Every read goes through the engine with the session's tenant, as the API's routes do;
an execution that is missing or another tenant's is the same 404 page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.event_data import api_event_data
from flowmonkey.api.schemas import CancelRequest, ResumeRequest
from flowmonkey.api.ui.diff import diff
from flowmonkey.api.ui.errors import UiError, from_engine_error, not_found
from flowmonkey.api.ui.execution_filters import STATUSES, ExecutionFilters
from flowmonkey.api.ui.graph import flow_svg, marks_from_history
from flowmonkey.api.ui.render import page, partial
from flowmonkey.api.ui.session import CheckedSession, Session, UiSession
from flowmonkey.engine import Engine
from flowmonkey.errors import FlowMonkeyError
from flowmonkey.events.envelope import Event
from flowmonkey.model.execution import Execution
from flowmonkey.projections.base import COUNT_CAP

router = APIRouter(include_in_schema=False)

#: rows per page of the list
PAGE_SIZE = 50
#: events per page of the timeline
TIMELINE_PAGE = 200
#: the most events read to mark the graph (the path taken, failed and retried steps)
MARKS_EVENTS = 10_000
#: the most children linked from an execution's header (the rest: the filtered list)
MAX_CHILDREN_SHOWN = 50
#: how often live views poll (htmx ``every``)
POLL = "2s"


# --------------------------------------------------------------------------- list


async def _list_context(request: Request, engine: Engine,
                        session: UiSession) -> dict[str, Any]:
    filters = ExecutionFilters.of(request.query_params, admin=session.admin)
    tenant_id = session.principal(filters.tenant).tenant_id
    args = filters.list_args(tenant_id)
    searched = None
    if filters.q:
        # an idempotency key (the caller's, any flow) unless it is an execution's id
        found = await engine.list(**args, status=filters.status or None,
                                  idempotency_key=filters.q, limit=PAGE_SIZE,
                                  cursor=filters.cursor or None)
        searched = filters.q
    else:
        found = await engine.list(**args, status=filters.status or None, limit=PAGE_SIZE,
                                  cursor=filters.cursor or None)
    counts = await engine.count_by_status(**args)
    flows = sorted({f.id for f in engine.flows.all()})
    return {"filters": filters, "items": found.items, "next_cursor": found.next_cursor,
            "counts": counts, "count_cap": COUNT_CAP, "statuses": STATUSES,
            "searched": searched, "flow_ids": flows, "live": not filters.cursor,
            "poll": POLL}


@router.get("/ui/executions")
async def executions(request: Request, engine: EngineDep, session: Session) -> Response:
    q = request.query_params.get("q", "").strip()
    if q and not request.query_params.get("cursor"):
        filters = ExecutionFilters.of(request.query_params, admin=session.admin)
        tenant_id = session.principal(filters.tenant).tenant_id
        if await engine.get(q, tenant_id=tenant_id) is not None:
            return RedirectResponse(_execution_url(q, filters.tenant), status_code=303)
    context = await _list_context(request, engine, session)
    return page(request, "executions.html", session, **context)


@router.get("/ui/executions/rows")
async def execution_rows(request: Request, engine: EngineDep, session: Session) -> Response:
    """The list's counts and rows alone: what the list page polls."""
    context = await _list_context(request, engine, session)
    return partial(request, "executions_rows.html", session, **context)


def _execution_url(execution_id: str, tenant: str = "") -> str:
    url = f"/ui/executions/{quote(execution_id, safe='')}"
    return f"{url}?tenant={quote(tenant, safe='')}" if tenant else url


# --------------------------------------------------------------------------- one


async def _visible(request: Request, engine: Engine, session: UiSession,
                   execution_id: str) -> tuple[Execution, str | None, str]:
    tenant = request.query_params.get("tenant", "") if session.admin else ""
    tenant_id = session.principal(tenant).tenant_id
    execution = await engine.get(execution_id, tenant_id=tenant_id)
    if execution is None:
        raise not_found("execution")
    return execution, tenant_id, tenant


def _int_param(request: Request, name: str, default: int, *, low: int = 0) -> int:
    raw = request.query_params.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 12:
        raise UiError(400, "Invalid request", f"{name} must be a whole number",
                      code="INVALID_REQUEST")
    return max(low, int(raw))


def _event_row(event: Event) -> dict[str, Any]:
    data = event.data
    error = data.get("error")
    return {"seq": event.seq, "type": event.type, "timestamp": event.timestamp,
            "step": data.get("step_id") or "", "attempt": data.get("attempt"),
            "duration_ms": data.get("duration_ms"), "outcome": data.get("outcome") or "",
            "error": error if isinstance(error, dict) else None,
            "data": api_event_data(event)}


async def _graph(engine: Engine, execution: Execution, tenant_id: str | None) -> str | None:
    """The flow drawn with this execution's path (None: the flow is not known here)."""
    flow = engine.flows.get(execution.flow_id, execution.flow_version)
    if flow is None:
        return None
    events = await engine.history(execution.id, tenant_id=tenant_id, limit=MARKS_EVENTS)
    return flow_svg(flow, marks_from_history(flow, events))


async def _live_context(request: Request, engine: Engine, session: UiSession,
                        execution_id: str) -> dict[str, Any]:
    execution, tenant_id, tenant = await _visible(request, engine, session, execution_id)
    after = _int_param(request, "after", 0)
    events = await engine.history(execution_id, tenant_id=tenant_id, after_seq=after,
                                  limit=TIMELINE_PAGE)
    children = execution.children[:MAX_CHILDREN_SHOWN]
    return {"e": execution, "tenant_q": f"?tenant={quote(tenant, safe='')}" if tenant else "",
            "tenant_id": tenant_id, "events": [_event_row(ev) for ev in events],
            "after": after, "page_size": TIMELINE_PAGE,
            "prev_after": max(0, after - TIMELINE_PAGE) if after > 0 else None,
            "next_after": events[-1].seq if events and events[-1].seq < execution.seq
            else None,
            "children": children, "more_children": len(execution.children) - len(children),
            "graph_svg": await _graph(engine, execution, tenant_id),
            "poll": POLL,
            "live": not execution.is_terminal}


@router.get("/ui/executions/{execution_id}")
async def execution_page(execution_id: str, request: Request, engine: EngineDep,
                         session: Session) -> Response:
    context = await _live_context(request, engine, session, execution_id)
    at = request.query_params.get("at")
    state = None
    if at:  # time travel without scripts: the state panel rendered with the page
        state = await _state_context(request, engine, session, execution_id)
    return page(request, "execution.html", session, state=state, **context)


@router.get("/ui/executions/{execution_id}/live")
async def execution_live(execution_id: str, request: Request, engine: EngineDep,
                         session: Session) -> Response:
    """The header, graph and timeline page: what a running execution's page polls."""
    context = await _live_context(request, engine, session, execution_id)
    return partial(request, "execution_live.html", session, **context)


# --------------------------------------------------------------------------- time travel


def _shown(execution: Execution | None) -> dict[str, Any]:
    """An execution as compared by the diffs: its JSON form without the attempt
    history (the timeline shows that), ``{}`` for none."""
    if execution is None:
        return {}
    return execution.model_dump(mode="json", exclude={"history"})


async def _state_context(request: Request, engine: Engine, session: UiSession,
                         execution_id: str) -> dict[str, Any]:
    execution, tenant_id, _ = await _visible(request, engine, session, execution_id)
    seq = min(_int_param(request, "at", execution.seq, low=1), execution.seq)
    state = await engine.projection.state_at(execution_id, seq, tenant_id=tenant_id)
    if state is None:
        raise UiError(404, "Not found", f"execution {execution_id!r} has no state at event "
                      f"{seq}", code="EVENT_NOT_FOUND")
    before = (await engine.projection.state_at(execution_id, seq - 1, tenant_id=tenant_id)
              if seq > 1 else None)
    events = await engine.history(execution_id, tenant_id=tenant_id, after_seq=seq - 1,
                                  limit=1)
    return {"at": seq, "last": execution.seq, "state": state,
            "event": _event_row(events[0]) if events else None,
            "changes": diff(_shown(before), _shown(state))}


@router.get("/ui/executions/{execution_id}/at")
async def execution_at(execution_id: str, request: Request, engine: EngineDep,
                       session: Session) -> Response:
    """The state right after event ``at`` and what that event changed."""
    state = await _state_context(request, engine, session, execution_id)
    return partial(request, "execution_state.html", session, **state)


# --------------------------------------------------------------------------- verify


@router.get("/ui/executions/{execution_id}/verify")
async def execution_verify(execution_id: str, request: Request, engine: EngineDep,
                           session: Session) -> Response:
    """The projection's execution against the one replayed from the events topic."""
    execution, _, _ = await _visible(request, engine, session, execution_id)
    try:
        from_log = await engine.replay(execution_id)
    except FlowMonkeyError as exc:
        raise from_engine_error(request, exc) from None
    result = diff(_shown(execution), _shown(from_log)) if from_log is not None else None
    context: dict[str, Any] = {"e": execution, "from_log": from_log, "result": result,
                               "behind": from_log is not None and execution.seq < from_log.seq}
    if request.headers.get("HX-Request"):
        return partial(request, "execution_verify.html", session, **context)
    return page(request, "execution_verify_page.html", session, **context)


# --------------------------------------------------------------------------- actions


def _done(request: Request, session: UiSession, execution_id: str, message: str,
          tenant: str) -> Response:
    if request.headers.get("HX-Request"):
        # the live region reloads at once on this event (hx-trigger "fm-refresh")
        return partial(request, "flash.html", session, message=message,
                       headers={"HX-Trigger": "fm-refresh"})
    return RedirectResponse(_execution_url(execution_id, tenant), status_code=303)


def _form_text(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _refused(error: ValidationError) -> UiError:
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or '(body)'}: "
                         f"{e.get('msg', 'invalid')}" for e in error.errors())
    return UiError(422, "Refused", f"invalid request: {problems}", code="VALIDATION_ERROR")


@router.post("/ui/executions/{execution_id}/resume")
async def execution_resume(execution_id: str, request: Request, engine: EngineDep,
                           session: CheckedSession) -> Response:
    execution, tenant_id, tenant = await _visible(request, engine, session, execution_id)
    form = await request.form()
    raw = _form_text(form, "data").strip()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise UiError(422, "Refused", f"the data is not valid JSON: {exc}",
                      code="VALIDATION_ERROR") from None
    try:
        body = ResumeRequest.model_validate({"token": _form_text(form, "token").strip(),
                                             "data": data})
    except ValidationError as exc:
        raise _refused(exc) from None
    try:
        resumed = await engine.resume(execution.id, body.token, body.data,
                                      tenant_id=tenant_id)
    except FlowMonkeyError as exc:
        raise from_engine_error(request, exc) from None
    return _done(request, session, execution.id, f"Resumed: the execution is now "
                 f"{resumed.status.value}.", tenant)


@router.post("/ui/executions/{execution_id}/cancel")
async def execution_cancel(execution_id: str, request: Request, engine: EngineDep,
                           session: CheckedSession) -> Response:
    execution, tenant_id, tenant = await _visible(request, engine, session, execution_id)
    form = await request.form()
    try:
        body = CancelRequest.model_validate({"reason": _form_text(form, "reason").strip()
                                             or None})
    except ValidationError as exc:
        raise _refused(exc) from None
    try:
        result = await engine.cancel(execution.id, "user", body.reason, tenant_id=tenant_id)
    except FlowMonkeyError as exc:
        raise from_engine_error(request, exc) from None
    if not result.cancelled:
        raise UiError(409, "Refused", result.reason or
                      f"execution {execution.id!r} cannot be cancelled", code="NOT_CANCELLABLE")
    return _done(request, session, execution.id, "Cancelled.", tenant)

