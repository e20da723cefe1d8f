"""The PostgreSQL projection's form submissions (``fm_form_submissions``): taken from
the batch's fresh form events (``form_submissions.submission_of``, as the memory
projection does), written in one statement inside the batch transaction, read back.

A submission is written once: ``on conflict do nothing`` keeps the first record of a
(form, submission id), so a replayed batch, or a projector sharing the schema,
changes nothing.
"""

# Assembled from constant fragments and $n placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from flowmonkey.events.envelope import Event
from flowmonkey.model.form_submission import SubmissionRecord

from .base import Page
from .batch_sql import json_text, unnest_params
from .form_submissions import SubmissionEntry, check_status, submission_of
from .row_sql import QueryParams
from .rows import decode_cursor, encode_cursor

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Conn = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]

_TYPES = {"id": "text", "form_id": "text", "tenant_id": "text", "status": "text",
          "submitted_at": "bigint", "data": "jsonb", "errors": "jsonb",
          "execution_id": "text", "duplicate_of": "text", "retry_after_ms": "bigint",
          "resumed": "boolean"}
_FIELDS = tuple(f.name for f in fields(SubmissionEntry))
assert set(_FIELDS) == set(_TYPES), "every SubmissionEntry field has a column"
_JSON = frozenset(name for name, kind in _TYPES.items() if kind == "jsonb")
SELECT = ", ".join(_FIELDS)
WRITE_SUBMISSIONS = f"""
insert into fm_form_submissions ({SELECT})
select * from {unnest_params([_TYPES[f] for f in _FIELDS], 1)}
on conflict (form_id, id) do nothing"""


def entry_of(row: Any) -> SubmissionEntry:
    return SubmissionEntry(**{name: row[name] for name in _FIELDS})


async def write_submissions(conn: Conn, events: Sequence[Event]) -> None:
    """Write the submissions ``events`` (fresh ones) record; none: no query."""
    rows = [_values(entry) for e in events if (entry := submission_of(e)) is not None]
    if rows:
        await conn.execute(WRITE_SUBMISSIONS, *[list(c) for c in zip(*rows, strict=True)])


def _values(entry: SubmissionEntry) -> tuple[Any, ...]:
    values: list[Any] = []
    for name in _FIELDS:
        value = getattr(entry, name)
        values.append(json_text(value) if name in _JSON and value is not None else value)
    return tuple(values)


async def get_submission(pool: Pool, form_id: str, submission_id: str,
                         tenant_id: str | None) -> SubmissionRecord | None:
    r = await pool.fetchrow(f"select {SELECT} from fm_form_submissions "
                            "where form_id = $1 and id = $2", form_id, submission_id)
    if r is None or (tenant_id is not None and r["tenant_id"] != tenant_id):
        return None
    return entry_of(r).to_record()


async def list_submissions(pool: Pool, form_id: str, *, status: str | None,
                           tenant_id: str | None, limit: int,
                           cursor: str | None) -> Page[SubmissionRecord]:
    check_status(status)
    limit = max(1, min(limit, 10_000))
    params = QueryParams(form_id)
    where = ["form_id = $1"]
    if cursor is not None:
        at, after = decode_cursor(cursor)
        where.append(f"(submitted_at, id) < ({params.add(at)}::bigint, "
                     f"{params.add(after)}::text)")
    for column, value in (("status", status), ("tenant_id", tenant_id)):
        if value is not None:
            where.append(f"{column} = {params.add(value)}::text")
    sql = (f"select {SELECT} from fm_form_submissions where {' and '.join(where)} "
           f"order by submitted_at desc, id desc limit {params.add(limit + 1)}::int")
    found = [entry_of(r) for r in await pool.fetch(sql, *params)]
    page = found[:limit]
    next_cursor = encode_cursor(page[-1].submitted_at, page[-1].id) \
        if len(found) > limit else None
    return Page[SubmissionRecord](items=[e.to_record() for e in page], next_cursor=next_cursor)
