"""SQL for the PostgreSQL projection's row queries: filters and order over a row's
``data`` (jsonb), with the same meaning as the memory projection's (``rows.py``):
every value is bound as a parameter (:class:`QueryParams`), never spliced in."""

# Assembled from constant fragments and $n placeholders; column names are bound too.
# ruff: noqa: S608

from __future__ import annotations

import builtins
from typing import Any

from flowmonkey.projections.base import RowFilter, RowOrder


class QueryParams(builtins.list[Any]):
    """Bound values of a query being built; ``add`` gives the placeholder for one."""

    def __init__(self, *initial: Any) -> None:
        super().__init__(initial)

    def add(self, value: Any) -> str:
        self.append(value)
        return f"${len(self)}"


def _value_sql(column: str, params: QueryParams) -> str:
    # a JSON null and a missing key are both "no value", as in memory's dict.get
    return f"nullif(data -> {params.add(column)}::text, 'null'::jsonb)"


def like_pattern(pattern: str) -> str:
    """``pattern`` for Postgres LIKE, where a trailing lone backslash is an error; the
    shared rule (rows.LikePattern) reads it as a literal backslash."""
    escaped = False
    for ch in pattern:
        escaped = not escaped and ch == "\\"
    return pattern + "\\" if escaped else pattern


def filter_sql(f: RowFilter, params: QueryParams) -> str:
    if f.op in _OPERATORS and (f.value is None or isinstance(f.value, dict)):
        return "false"  # nothing is ordered against no value or an object
    value = _value_sql(f.column, params)
    if f.op in ("eq", "neq"):
        negation = "" if f.op == "neq" else "not "
        return f"{value} is {negation}distinct from {params.add(f.value)}::jsonb"
    if f.op == "in":
        return (f"exists (select 1 from jsonb_array_elements({params.add(list(f.value))}"
                f"::jsonb) as candidate(v) where nullif(candidate.v, 'null'::jsonb) "
                f"is not distinct from {value})")
    if f.op == "like":
        return (f"case when jsonb_typeof({value}) = 'string' then ({value} #>> '{{}}') "
                f"like {params.add(like_pattern(f.value))}::text else false end")
    return _comparison_sql(value, f.op, f.value, params)


_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _comparison_sql(value: str, op: str, expected: Any, params: QueryParams) -> str:
    """Ordering operators compare only values of the same JSON type (see rows.py)."""
    sql_op = _OPERATORS[op]
    if isinstance(expected, bool):
        kind, cast = "boolean", f"({value})::boolean {sql_op} {params.add(expected)}::boolean"
    elif isinstance(expected, int | float):
        kind, cast = "number", f"({value})::numeric {sql_op} {params.add(expected)}::numeric"
    elif isinstance(expected, str):
        kind, cast = "string", (f'({value} #>> \'{{}}\') collate "C" {sql_op} '
                                f"{params.add(expected)}::text")
    elif isinstance(expected, list | tuple):
        kind, cast = "array", f"{value} {sql_op} {params.add(list(expected))}::jsonb"
    else:
        return "false"
    # CASE, because SQL does not promise to evaluate AND's operands left to right
    return f"case when jsonb_typeof({value}) = '{kind}' then {cast} else false end"


def order_sql(order: RowOrder | None, params: QueryParams) -> str:
    """Missing values last ascending and first descending; values grouped by JSON type
    (numbers, booleans, strings, the rest) like rows.sort_key; ties by (created_at, id)."""
    if order is None:
        return "created_at, id"
    value = _value_sql(order.column, params)
    way = "desc" if order.direction == "desc" else "asc"
    kind = f"jsonb_typeof({value})"
    return ", ".join([
        f"({value} is null) {way}",
        f"case {kind} when 'number' then 0 when 'boolean' then 1 when 'string' then 2 "
        f"else 3 end {way}",
        f"case when {kind} = 'number' then ({value})::numeric end {way}",
        f"case when {kind} = 'boolean' then ({value})::boolean end {way}",
        f"case when {kind} = 'string' then ({value} #>> '{{}}') end collate \"C\" {way}",
        f"case when {kind} in ('array', 'object') then {value} end {way}",
        "created_at", "id",
    ])
