"""``/v1/triggers``: list and read triggers, pause and resume them, a schedule's next
fire times.

Reads are scoped to the caller's tenant like executions (another tenant's trigger
answers 404, as one that does not exist); pausing and resuming take an admin key.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from flowmonkey.api.deps import Caller, EngineDep
from flowmonkey.api.errors import ApiError, not_found
from flowmonkey.api.routes_executions import MAX_PAGE
from flowmonkey.api.schemas import (
    NextFireOut,
    TriggerChangeRequest,
    TriggerOut,
    TriggerPage,
    errors,
)
from flowmonkey.engine import Engine
from flowmonkey.events.envelope import ms_to_datetime
from flowmonkey.model.trigger import TriggerKind
from flowmonkey.model.trigger_record import TriggerRecord
from flowmonkey.runtime.trigger_defs import next_fire_times

router = APIRouter(prefix="/v1/triggers", tags=["triggers"])

MAX_NEXT = 100


async def _record(engine: Engine, trigger_id: str, tenant_id: str | None) -> TriggerRecord:
    record = await engine.projection.get_trigger(trigger_id, tenant_id=tenant_id)
    if record is None:
        raise not_found("trigger", trigger_id)
    return record


@router.get("", response_model=TriggerPage, responses=errors(400, 401, 422))
async def list_triggers(
    engine: EngineDep, caller: Caller,
    kind: TriggerKind | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId", min_length=1)] = None,
    enabled: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
) -> TriggerPage:
    """Triggers by id (a tenant key sees its tenant's; an admin key every one, or the
    tenant ``X-Tenant-Id`` names); pass ``nextCursor`` back as ``cursor`` for the next
    page (``null`` on the last one)."""
    page = await engine.projection.list_triggers(
        tenant_id=caller.tenant_id, kind=kind, flow_id=flow_id, enabled=enabled,
        limit=limit, cursor=cursor)
    return TriggerPage(items=[TriggerOut.of(t) for t in page.items],
                       next_cursor=page.next_cursor)


@router.get("/{trigger_id}", response_model=TriggerOut, responses=errors(401, 404))
async def get_trigger(trigger_id: str, engine: EngineDep, caller: Caller) -> TriggerOut:
    return TriggerOut.of(await _record(engine, trigger_id, caller.tenant_id))


@router.get("/{trigger_id}/next", response_model=NextFireOut,
            responses=errors(401, 404, 409, 422))
async def next_fire(trigger_id: str, engine: EngineDep, caller: Caller,
                    count: Annotated[int, Query(ge=1, le=MAX_NEXT)] = 5) -> NextFireOut:
    """A schedule's next ``count`` fire times, from now (a webhook, event or topic
    trigger has none: 409)."""
    record = await _record(engine, trigger_id, caller.tenant_id)
    trigger = record.trigger()
    if trigger.schedule is None:
        raise ApiError(409, "NOT_A_SCHEDULE",
                       f"trigger {trigger_id!r} is a {trigger.kind} trigger: only schedules "
                       "have fire times")
    now_ms = time.time_ns() // 1_000_000
    times = next_fire_times(trigger, now_ms, count)
    return NextFireOut(trigger_id=trigger.id, enabled=record.enabled,
                       timezone=trigger.schedule.timezone,
                       times=[ms_to_datetime(t) for t in times])


def _admin(caller: Caller) -> None:
    if not caller.admin:
        raise ApiError(403, "FORBIDDEN", "pausing and resuming triggers takes an admin key")


@router.post("/{trigger_id}/pause", response_model=TriggerOut,
             responses=errors(401, 403, 404, 422))
async def pause_trigger(trigger_id: str, engine: EngineDep, caller: Caller,
                        body: TriggerChangeRequest | None = None) -> TriggerOut:
    """Disable the trigger (admin keys): webhooks answer 409, a schedule arms no tick,
    events and records start nothing, until it is resumed. Pausing a paused trigger
    changes nothing."""
    _admin(caller)
    await _record(engine, trigger_id, caller.tenant_id)
    await engine.pause_trigger(trigger_id, by="api",
                               reason=body.reason if body is not None else None)
    return TriggerOut.of(await _record(engine, trigger_id, caller.tenant_id))


@router.post("/{trigger_id}/resume", response_model=TriggerOut,
             responses=errors(401, 403, 404, 422))
async def resume_trigger(trigger_id: str, engine: EngineDep, caller: Caller,
                         body: TriggerChangeRequest | None = None) -> TriggerOut:
    """Enable the trigger again (admin keys); a schedule's ticks missed while it was
    paused are not caught up."""
    _admin(caller)
    await _record(engine, trigger_id, caller.tenant_id)
    await engine.resume_trigger(trigger_id, by="api",
                                reason=body.reason if body is not None else None)
    return TriggerOut.of(await _record(engine, trigger_id, caller.tenant_id))
