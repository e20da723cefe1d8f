"""The PostgreSQL projection's jobs (``fm_jobs``): folded in the batch transaction,
written in one statement, and read back.

A batch loads the records of the jobs its events name, folds the fresh events onto
them with :func:`~flowmonkey.projections.job_records.fold_job` (the memory
projection's fold) and writes the changed ones column-wise, like ``batch_sql``. A
job belongs to one execution, whose row the batch holds locked, and each record
carries the seq of the event that last changed it: a write never replaces a record
with an older one, even from a projector that shares the schema.
"""

# Assembled from constant fragments and $n placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flowmonkey.events.envelope import Event
from flowmonkey.model.job import JobRecord, JobStatus

from .base import Page
from .batch_sql import json_text, unnest_params
from .job_records import JobEntry, entry_from_json, entry_to_json, fold_job, job_id_of
from .row_sql import QueryParams
from .rows import decode_cursor, encode_cursor

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Conn = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]

_COLUMNS = ("job_id", "execution_id", "tenant_id", "type", "status", "worker_id",
            "created_at", "updated_at", "seq", "record")
_TYPES = ("text", "text", "text", "text", "text", "text", "bigint", "bigint", "bigint",
          "jsonb")
WRITE_JOBS = f"""
insert into fm_jobs ({", ".join(_COLUMNS)}) select * from {unnest_params(_TYPES, 1)}
on conflict (job_id) do update set status = excluded.status,
    worker_id = excluded.worker_id, updated_at = excluded.updated_at,
    seq = excluded.seq, record = excluded.record
where fm_jobs.seq < excluded.seq"""


class JobBatch:
    """The jobs one batch changes: load, fold, write (inside the batch's transaction)."""

    def __init__(self) -> None:
        self._entries: dict[str, JobEntry | None] = {}
        self._changed: dict[str, int] = {}  # job id -> seq of its last change

    async def load(self, conn: Conn, events: Sequence[Event]) -> None:
        """Read the stored records of the jobs ``events`` name (none: no query)."""
        ids = sorted({i for e in events if e.seq != 0 and (i := job_id_of(e)) is not None})
        if not ids:
            return
        self._entries = dict.fromkeys(ids)
        for r in await conn.fetch(
                "select job_id, record from fm_jobs where job_id = any($1::text[])", ids):
            self._entries[r["job_id"]] = entry_from_json(r["record"])

    def fold(self, event: Event, flow_id: str | None) -> None:
        """Apply one fresh event (any type; those about no job change nothing)."""
        job_id = job_id_of(event)
        if job_id is None:
            return
        before = self._entries.get(job_id)
        after = fold_job(before, event, flow_id)
        if after is not None and after is not before:
            self._entries[job_id] = after
            self._changed[job_id] = event.seq

    async def write(self, conn: Conn) -> None:
        rows = [_values(entry, seq) for job_id, seq in self._changed.items()
                if (entry := self._entries.get(job_id)) is not None]
        if rows:
            await conn.execute(WRITE_JOBS, *[list(c) for c in zip(*rows, strict=True)])


def _values(e: JobEntry, seq: int) -> tuple[Any, ...]:
    return (e.job_id, e.execution_id, e.tenant_id, e.type, e.status, e.worker_id,
            e.created_at, e.updated_at, seq, json_text(entry_to_json(e)))


async def get_job(pool: Pool, job_id: str, tenant_id: str | None) -> JobRecord | None:
    r = await pool.fetchrow("select tenant_id, record from fm_jobs where job_id = $1", job_id)
    if r is None or (tenant_id is not None and r["tenant_id"] != tenant_id):
        return None
    return entry_from_json(r["record"]).to_record()


async def list_jobs(pool: Pool, *, tenant_id: str | None, status: JobStatus | str | None,
                    type: str | None, execution_id: str | None, worker_id: str | None,
                    limit: int, cursor: str | None) -> Page[JobRecord]:
    limit = max(1, min(limit, 10_000))
    after = decode_cursor(cursor) if cursor is not None else None
    params = QueryParams()
    where = ["true"]
    for column, value in (("tenant_id", tenant_id), ("type", type),
                          ("execution_id", execution_id), ("worker_id", worker_id),
                          ("status", str(status) if status is not None else None)):
        if value is not None:
            where.append(f"{column} = {params.add(value)}::text")
    if after is not None:
        # newest first: "after" the cursor means strictly older in (created_at, job_id)
        where.append(f"(created_at, job_id) < ({params.add(after[0])}::bigint, "
                     f"{params.add(after[1])}::text)")
    sql = (f"select record from fm_jobs where {' and '.join(where)} "
           f"order by created_at desc, job_id desc limit {params.add(limit + 1)}::int")
    found: builtins.list[JobEntry] = [entry_from_json(r["record"])
                                      for r in await pool.fetch(sql, *params)]
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last.created_at, last.job_id)
    return Page[JobRecord](items=[e.to_record() for e in page], next_cursor=next_cursor)
