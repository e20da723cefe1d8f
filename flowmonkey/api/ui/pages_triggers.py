"""The triggers pages: the list (kind, flow, enabled filters, cursor paging) with each
trigger's next fire, one trigger (its definition, a schedule's next fire times, what it
did), and the pause and resume actions, which take an admin session as the API's do.

Reads are scoped to the session's tenant like ``/v1/triggers``; an action reads the
trigger first (another tenant's is the same 404 as a missing one), then calls the
engine as ``POST /v1/triggers/{id}/pause|resume`` does, recorded as by ``ui``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.ui.errors import not_found
from flowmonkey.api.ui.pages_support import (
    PAGE_SIZE,
    bool_param,
    choice_param,
    filters_of,
    form_text,
    link,
    require_admin,
    segment,
    text_param,
)
from flowmonkey.api.ui.render import page
from flowmonkey.api.ui.session import CheckedSession, Session
from flowmonkey.engine import Engine
from flowmonkey.events.envelope import ms_to_datetime
from flowmonkey.model.trigger import KINDS
from flowmonkey.model.trigger_record import TriggerRecord
from flowmonkey.runtime.trigger_defs import next_fire_times

router = APIRouter(include_in_schema=False)

FILTERS = ("kind", "flowId", "enabled", "tenant")
#: a schedule's fire times shown on its page
NEXT_FIRES = 5
#: a reason's longest (as the API's TriggerChangeRequest)
MAX_REASON_CHARS = 1_000
#: what an action's redirect says (a fixed text: nothing a client sent is echoed)
DONE = {"paused": "Paused.", "resumed": "Resumed.",
        "unchanged-paused": "It was paused already: nothing changed.",
        "unchanged-resumed": "It was enabled already: nothing changed."}


async def _record(engine: Engine, trigger_id: str, tenant_id: str | None) -> TriggerRecord:
    record = await engine.projection.get_trigger(trigger_id, tenant_id=tenant_id)
    if record is None:
        raise not_found("trigger")
    return record


@router.get("/ui/triggers")
async def triggers(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    found = await engine.projection.list_triggers(
        tenant_id=principal.tenant_id, kind=choice_param(request, "kind", KINDS),
        flow_id=text_param(request, "flowId"), enabled=bool_param(request, "enabled"),
        limit=PAGE_SIZE, cursor=text_param(request, "cursor", max_chars=2000))
    filters = filters_of(request, FILTERS)
    next_url = (link("/ui/triggers", {**filters, "cursor": found.next_cursor})
                if found.next_cursor else None)
    return page(request, "triggers.html", session, items=found.items, filters=filters,
                kinds=KINDS, next_url=next_url, paged="cursor" in request.query_params)


@router.get("/ui/triggers/{trigger_id}")
async def trigger(trigger_id: str, request: Request, engine: EngineDep,
                  session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    record = await _record(engine, trigger_id, principal.tenant_id)
    definition = record.trigger()
    fires = []
    if definition.schedule is not None:
        now_ms = time.time_ns() // 1_000_000
        fires = [ms_to_datetime(t) for t in next_fire_times(definition, now_ms, NEXT_FIRES)]
    done = DONE.get(request.query_params.get("done", ""))
    return page(request, "trigger.html", session, trigger=record, fires=fires,
                timezone=definition.schedule.timezone if definition.schedule else None,
                done=done, max_reason=MAX_REASON_CHARS)


async def _change(request: Request, engine: Engine, session: CheckedSession,
                  trigger_id: str, pause: bool) -> Response:
    require_admin(session, "pausing and resuming triggers")
    tenant_id = session.principal().tenant_id
    await _record(engine, trigger_id, tenant_id)
    reason = await form_text(request, "reason", max_chars=MAX_REASON_CHARS)
    change = engine.pause_trigger if pause else engine.resume_trigger
    changed = await change(trigger_id, by="ui", reason=reason)
    what = "paused" if pause else "resumed"
    done = what if changed else f"unchanged-{what}"
    return RedirectResponse(link(f"/ui/triggers/{segment(trigger_id)}", {"done": done}),
                            status_code=303)


@router.post("/ui/triggers/{trigger_id}/pause")
async def pause(trigger_id: str, request: Request, engine: EngineDep,
                session: CheckedSession) -> Response:
    return await _change(request, engine, session, trigger_id, pause=True)


@router.post("/ui/triggers/{trigger_id}/resume")
async def resume(trigger_id: str, request: Request, engine: EngineDep,
                 session: CheckedSession) -> Response:
    return await _change(request, engine, session, trigger_id, pause=False)
