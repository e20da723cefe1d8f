"""The WAL page: the pipe rows that could not be written into their table (pending
entries, oldest first, with the reason), and the replay and ack actions.

The WAL spans every tenant and has no paging of its own (the projection lists the
oldest pending entries up to a limit), so the page and its actions take an admin
session, as pausing a trigger does in the API; an admin's tenant filter narrows the
listed entries. Replay retries the oldest pending entries, as ``flowmonkey wal
replay`` does; ack marks one entry done without writing its row.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.ui.errors import not_found
from flowmonkey.api.ui.pages_support import (
    int_param,
    invalid,
    link,
    require_admin,
    text_param,
)
from flowmonkey.api.ui.render import page
from flowmonkey.api.ui.session import CheckedSession, Session
from flowmonkey.projections.memory import MemoryProjection

router = APIRouter(include_in_schema=False)

DEFAULT_LIMIT = 100
#: the most entries a page lists or a replay retries at once (as the CLI's defaults)
MAX_LIMIT = 1000
WHAT = "the WAL (every tenant's pipe rows)"


@router.get("/ui/wal")
async def wal(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    require_admin(session, WHAT)
    tenant = session.principal(request.query_params.get("tenant")).tenant_id
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    pending = await engine.projection.wal_pending(limit)
    shown = [e for e in pending if tenant is None or e.tenant_id == tenant]
    result = None
    if "replayed" in request.query_params:
        result = {name: int_param(request, name, 0, 0, MAX_LIMIT)
                  for name in ("replayed", "failed", "discarded")}
    return page(request, "wal.html", session, entries=shown, listed=len(pending),
                limit=limit, max_limit=MAX_LIMIT, more=len(pending) == limit,
                filters={"tenant": tenant or ""}, result=result,
                acked=text_param(request, "acked") is not None,
                in_memory=isinstance(engine.projection, MemoryProjection))


async def _form_limit(request: Request) -> int:
    form = await request.form()  # cached: the CSRF check read it already
    value = form.get("limit")
    if not isinstance(value, str) or not value.strip():
        return DEFAULT_LIMIT
    try:
        limit = int(value.strip())
    except ValueError:
        raise invalid("limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be from 1 to {MAX_LIMIT}")
    return limit


@router.post("/ui/wal/replay")
async def replay(request: Request, engine: EngineDep, session: CheckedSession) -> Response:
    require_admin(session, WHAT)
    result = await engine.projection.wal_replay(await _form_limit(request))
    return RedirectResponse(link("/ui/wal", {"replayed": result.replayed,
                                             "failed": result.failed,
                                             "discarded": result.discarded}),
                            status_code=303)


@router.post("/ui/wal/{entry_id}/ack")
async def ack(entry_id: str, engine: EngineDep, session: CheckedSession) -> Response:
    require_admin(session, WHAT)
    if not await engine.projection.wal_ack(entry_id):
        raise not_found("WAL entry")
    return RedirectResponse(link("/ui/wal", {"acked": "1"}), status_code=303)
