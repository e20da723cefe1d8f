"""The executions pages: the list (filters, search, paging, live refresh) and one
execution."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.ui.render import page
from flowmonkey.api.ui.session import Session

router = APIRouter(include_in_schema=False)

#: rows per page of the list
PAGE_SIZE = 50


@router.get("/ui/executions")
async def executions(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    found = await engine.list(tenant_id=principal.tenant_id, limit=PAGE_SIZE,
                              cursor=request.query_params.get("cursor") or None)
    return page(request, "executions.html", session, items=found.items,
                next_cursor=found.next_cursor)
