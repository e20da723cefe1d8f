"""``/v1/tables``: the data tables pipes write into, and their rows (tenant-scoped)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast, get_args

import orjson
from fastapi import APIRouter, Query

from flowmonkey.api.deps import Caller, EngineDep
from flowmonkey.api.errors import ApiError
from flowmonkey.api.schemas import RowOut, RowsOut, TableList, TableOut, errors
from flowmonkey.projections.base import FilterOp, RowFilter, RowOrder, RowQuery

router = APIRouter(prefix="/v1/tables", tags=["tables"])

_OPS = get_args(FilterOp)


@router.get("", response_model=TableList, responses=errors(401))
async def list_tables(engine: EngineDep, caller: Caller) -> TableList:
    return TableList(items=[TableOut.of(t) for t in await engine.projection.list_tables()])


def parse_filter(text: str) -> RowFilter:
    """``column:op:value``; the value is read as JSON when it is JSON (``5``, ``true``,
    ``["a","b"]`` for ``in``), else taken as a string."""
    column, sep, rest = text.partition(":")
    op, sep2, raw = rest.partition(":")
    if not (sep and sep2 and column):
        raise ApiError(422, "VALIDATION_ERROR",
                       f"filter {text!r} is not column:op:value (e.g. status:eq:paid)")
    if op not in _OPS:
        raise ApiError(422, "VALIDATION_ERROR",
                       f"filter {text!r}: op must be one of {', '.join(_OPS)}")
    try:
        # orjson, not json: it refuses NaN, numbers beyond 64 bits and nesting deeper
        # than 1024 (json.loads raised RecursionError, a 500) - all then read as text
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw
    return RowFilter(column=column, op=cast(FilterOp, op), value=value)


@router.get("/{table_id}/rows", response_model=RowsOut, responses=errors(401, 404, 422))
async def table_rows(
    table_id: str, engine: EngineDep, caller: Caller,
    filter: Annotated[list[str], Query(
        description="column:op:value, repeatable (all must match); op is one of "
                    + ", ".join(_OPS))] = [],  # noqa: B006 - FastAPI copies defaults
    order_by: Annotated[str | None, Query(alias="orderBy")] = None,
    direction: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    # PostgreSQL takes the offset as an int4: a larger one would be a 500, not a 422
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> RowsOut:
    """The rows of a table, oldest first unless ``orderBy`` says otherwise."""
    if await engine.projection.get_table(table_id) is None:
        raise ApiError(404, "TABLE_NOT_FOUND", f"table {table_id!r} not found")
    query = RowQuery(table_id=table_id, tenant_id=caller.tenant_id,
                     filters=[parse_filter(f) for f in filter],
                     order_by=RowOrder(column=order_by, direction=direction)
                     if order_by else None, limit=limit, offset=offset)
    page = await engine.projection.query_rows(query)
    rows = [RowOut.model_validate(row, from_attributes=True) for row in page.rows]
    return RowsOut(table_id=table_id, rows=rows, total=page.total)
