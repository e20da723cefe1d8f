"""The PostgreSQL projection's triggers (``fm_triggers``): folded in the batch
transaction, written in one statement, and read back.

A batch loads the records of the triggers its events name, folds the fresh events
onto them with :func:`~flowmonkey.projections.trigger_records.fold_trigger` (the
memory projection's fold) and writes the changed ones. Each row carries the seq of
the trigger entity's event that last changed it: a write never replaces a record
with an older one, even from a projector that shares the schema.
"""

# Assembled from constant fragments and $n placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from flowmonkey.events.envelope import Event
from flowmonkey.model.trigger_record import TriggerRecord

from .base import Page
from .batch_sql import json_text, unnest_params
from .row_sql import QueryParams
from .rows import decode_cursor, encode_cursor
from .trigger_records import TriggerEntry, fold_trigger, trigger_id_of

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Conn = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]

_TYPES = {"id": "text", "kind": "text", "flow_id": "text", "tenant_id": "text",
          "enabled": "boolean", "definition": "jsonb", "created_at": "bigint",
          "updated_at": "bigint", "flow_version": "text", "fired": "bigint",
          "failed": "bigint", "skipped": "bigint", "last_fired_at": "bigint",
          "last_execution_id": "text", "last_failed_at": "bigint",
          "last_failure": "jsonb", "next_fire_at": "bigint"}
_FIELDS = tuple(f.name for f in fields(TriggerEntry))
assert set(_FIELDS) == set(_TYPES), "every TriggerEntry field has a column"
_COLUMNS = (*_FIELDS, "seq")
_JSON = frozenset(name for name, kind in _TYPES.items() if kind == "jsonb")
SELECT = ", ".join(_FIELDS)
WRITE_TRIGGERS = f"""
insert into fm_triggers ({", ".join(_COLUMNS)})
select * from {unnest_params([*(_TYPES[f] for f in _FIELDS), "bigint"], 1)}
on conflict (id) do update set
    {", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("id", "created_at"))}
where fm_triggers.seq < excluded.seq"""


def entry_of(row: Any) -> TriggerEntry:
    return TriggerEntry(**{name: row[name] for name in _FIELDS})


class TriggerBatch:
    """The triggers one batch changes: load, fold, write (inside its transaction)."""

    def __init__(self) -> None:
        self._entries: dict[str, TriggerEntry | None] = {}
        self._changed: dict[str, int] = {}  # trigger id -> seq of its last change

    async def load(self, conn: Conn, events: Sequence[Event]) -> None:
        """Read the stored records of the triggers ``events`` name (none: no query)."""
        ids = sorted({i for e in events if e.seq != 0 and (i := trigger_id_of(e)) is not None})
        if not ids:
            return
        self._entries = dict.fromkeys(ids)
        for r in await conn.fetch(
                f"select {SELECT} from fm_triggers where id = any($1::text[])", ids):
            self._entries[r["id"]] = entry_of(r)

    def fold(self, event: Event) -> None:
        """Apply one fresh event (those of executions change nothing)."""
        trigger_id = trigger_id_of(event)
        if trigger_id is None:
            return
        before = self._entries.get(trigger_id)
        after = fold_trigger(before, event)
        if after is not None and after is not before:
            self._entries[trigger_id] = after
            self._changed[trigger_id] = event.seq

    async def write(self, conn: Conn) -> None:
        rows = [_values(entry, seq) for trigger_id, seq in self._changed.items()
                if (entry := self._entries.get(trigger_id)) is not None]
        if rows:
            await conn.execute(WRITE_TRIGGERS, *[list(c) for c in zip(*rows, strict=True)])


def _values(entry: TriggerEntry, seq: int) -> tuple[Any, ...]:
    values: list[Any] = []
    for name in _FIELDS:
        value = getattr(entry, name)
        values.append(json_text(value) if name in _JSON and value is not None else value)
    return (*values, seq)


async def get_trigger(pool: Pool, trigger_id: str,
                      tenant_id: str | None) -> TriggerRecord | None:
    r = await pool.fetchrow(f"select {SELECT} from fm_triggers where id = $1", trigger_id)
    if r is None or (tenant_id is not None and r["tenant_id"] != tenant_id):
        return None
    return entry_of(r).to_record()


async def list_triggers(pool: Pool, *, tenant_id: str | None, kind: str | None,
                        flow_id: str | None, enabled: bool | None, limit: int,
                        cursor: str | None) -> Page[TriggerRecord]:
    limit = max(1, min(limit, 10_000))
    after = decode_cursor(cursor)[1] if cursor is not None else None
    params = QueryParams()
    where = ["true"]
    for column, value in (("tenant_id", tenant_id), ("kind", kind), ("flow_id", flow_id),
                          ("id >", after)):
        if value is not None:
            name, _, op = column.partition(" ")
            where.append(f"{name} {op or '='} {params.add(value)}::text")
    if enabled is not None:
        where.append(f"enabled = {params.add(enabled)}::boolean")
    sql = (f"select {SELECT} from fm_triggers where {' and '.join(where)} "
           f"order by id limit {params.add(limit + 1)}::int")
    found = [entry_of(r) for r in await pool.fetch(sql, *params)]
    page = found[:limit]
    next_cursor = encode_cursor(0, page[-1].id) if len(found) > limit else None
    return Page[TriggerRecord](items=[e.to_record() for e in page], next_cursor=next_cursor)
