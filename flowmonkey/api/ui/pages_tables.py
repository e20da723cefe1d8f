"""The tables pages: the data tables pipes write into, and a table's rows with the
API's filters (``column:op:value``, repeatable), ordering and paging, scoped to the
session's tenant as ``/v1/tables/{id}/rows`` is.

The projection pages rows by offset (with their total), as the API does. A filter or
order the table refuses (an unknown column, a value of the wrong type) is shown on
the page with the API's code and message, the form kept for correcting it.
"""

from __future__ import annotations

from typing import Literal, cast, get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.errors import ApiError
from flowmonkey.api.routes_tables import parse_filter
from flowmonkey.api.ui.errors import UiError, from_api_error, from_engine_error, not_found
from flowmonkey.api.ui.pages_support import (
    PAGE_SIZE,
    choice_param,
    int_param,
    invalid,
    link,
    segment,
    text_param,
)
from flowmonkey.api.ui.render import page
from flowmonkey.api.ui.session import Session
from flowmonkey.errors import FlowMonkeyError
from flowmonkey.projections.base import FilterOp, RowOrder, RowPage, RowQuery

router = APIRouter(include_in_schema=False)

OPS = get_args(FilterOp)

#: filters one query takes (the API takes any number; a page's form needs a bound)
MAX_FILTERS = 20
#: PostgreSQL takes the offset as an int4 (as the API bounds it)
MAX_OFFSET = 2**31 - 1


@router.get("/ui/tables")
async def tables(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    found = sorted(await engine.projection.list_tables(), key=lambda t: t.id)
    return page(request, "tables.html", session, items=found)


@router.get("/ui/tables/{table_id}")
async def table(table_id: str, request: Request, engine: EngineDep,
                session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    found = await engine.projection.get_table(table_id)
    if found is None:
        raise not_found("table")
    raw = [f.strip() for f in request.query_params.getlist("filter") if f.strip()]
    if len(raw) > MAX_FILTERS:
        raise invalid(f"at most {MAX_FILTERS} filters")
    order_by = text_param(request, "orderBy")
    direction = cast(Literal["asc", "desc"],
                     choice_param(request, "direction", ("asc", "desc")) or "asc")
    offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
    params = {"filter": raw, "orderBy": order_by, "direction": direction,
              "tenant": request.query_params.get("tenant", "")}
    rows: RowPage | None = None
    problem: UiError | None = None
    try:
        query = RowQuery(table_id=table_id, tenant_id=principal.tenant_id,
                         filters=[parse_filter(f) for f in raw],
                         order_by=RowOrder(column=order_by, direction=direction)
                         if order_by else None, limit=PAGE_SIZE, offset=offset)
        rows = await engine.projection.query_rows(query)
    except ApiError as exc:
        problem = from_api_error(exc)
    except FlowMonkeyError as exc:
        problem = from_engine_error(request, exc)
        if problem.status >= 500:
            raise problem from None
    here = f"/ui/tables/{segment(table_id)}"
    later = offset + PAGE_SIZE
    return page(
        request, "table.html", session, status=problem.status if problem else 200,
        table=found, rows=rows, problem=problem, filters=[*raw, ""], ops=OPS,
        order_by=order_by or "", direction=direction, offset=offset,
        next_url=link(here, {**params, "offset": later})
        if rows is not None and later < rows.total else None,
        prev_url=link(here, {**params, "offset": max(0, offset - PAGE_SIZE)})
        if offset else None,
        tenant_filter=request.query_params.get("tenant", ""))
