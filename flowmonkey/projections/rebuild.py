"""Rebuilding the Postgres projection from the log into a fresh schema, and swapping it
in for the current one (FEATURES F6, DESIGN §5).

The events topic is projected from offset 0 into the new schema under a projector
group of its own, until every partition reaches the end offset it had when the
rebuild started. Table definitions are not events (they are configuration written
through the API), so they are copied from the current schema first, or pipe rows
would land in the WAL; data-table rows and WAL entries are copied too unless asked
to come from the log alone (rows inserted through the API are not in the log).

The swap renames both schemas in one transaction: readers that name the schema
(every query runs with ``search_path`` set to it) see the new tables at their next
statement. A projector still writing to the current schema could land a batch in
the old one after the swap; the swap refuses while any group stored in the current
schema is ahead of the rebuild, so stop the projectors first and start them after:
they resume from the rebuilt schema's offsets, copied to each of their groups.
"""

# Identifiers (schema names) cannot be bound parameters: they reach SQL only quoted by
# checked_schema, and every value is a $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.log.base import Log
from flowmonkey.pg.schema import checked_schema
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.projector import Projector

COUNTED_TABLES = ("fm_executions", "fm_events", "fm_rejections", "fm_resume_tokens",
                  "fm_jobs", "fm_triggers", "fm_form_submissions", "fm_table_defs",
                  "fm_table_rows", "fm_wal_entries")
RowsFrom = Literal["current", "log"]
_SWAP_ROUNDS = 5
_WAIT_SLICE_S = 0.5


BAD_TARGET = "REBUILD_BAD_TARGET"
"""The code of a :class:`RebuildError` for an ``into`` schema that cannot be used."""


class RebuildError(FlowMonkeyError):
    code = "REBUILD_ERROR"


@dataclass(slots=True)
class RebuildProgress:
    applied_events: int
    position: int
    """Records projected so far, summed over partitions (offsets, markers included)."""
    target: int
    """The end offsets the rebuild runs to, summed over partitions."""


@dataclass(slots=True)
class RebuildResult:
    into: str
    group: str
    ends: list[int]
    applied_events: int = 0
    copied: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    """Rows per table in the rebuilt schema."""
    previous: dict[str, int] | None = None
    """Rows per table in the current schema (None when it has no projection)."""
    swapped: bool = False
    old_schema: str | None = None
    """After a swap: the name the current schema was renamed to (None if there was
    no current schema)."""


def old_schema_name(schema: str, now: float | None = None) -> str:
    """``<schema>_old_<UTC timestamp>``, cut to Postgres' 63-character names."""
    suffix = "_old_" + time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return schema[:63 - len(suffix)] + suffix


async def tables_of(conn: asyncpg.Connection[asyncpg.Record], schema: str) -> list[str]:
    rows = await conn.fetch("select table_name from information_schema.tables "
                            "where table_schema = $1 order by table_name", schema)
    return [r["table_name"] for r in rows]


async def prepare_target(conn: asyncpg.Connection[asyncpg.Record], into: str, current: str,
                         *, force: bool) -> None:
    """Make sure ``into`` can take the rebuild: refuse (or, with ``force``, drop) one
    that already has tables; never the current schema."""
    quoted = checked_schema(into)
    checked_schema(current)
    if into == current:
        raise RebuildError(f'--into must name another schema than the current one '
                           f'("{current}")', code=BAD_TARGET)
    tables = await tables_of(conn, into)
    if not tables:
        return
    if not force:
        raise RebuildError(
            f'schema "{into}" already has tables ({", ".join(tables[:5])}'
            f'{", …" if len(tables) > 5 else ""}): name a new schema, or pass --force to '
            "drop it and rebuild it", code=BAD_TARGET, schema=into)
    await conn.execute(f"drop schema {quoted} cascade")


async def count_rows(conn: asyncpg.Connection[asyncpg.Record],
                     schema: str) -> dict[str, int] | None:
    quoted = checked_schema(schema)
    present = set(await tables_of(conn, schema))
    if "fm_executions" not in present:
        return None
    counts: dict[str, int] = {}
    for table in COUNTED_TABLES:
        if table in present:
            counts[table] = int(await conn.fetchval(f"select count(*) from {quoted}.{table}"))
    return counts


# what is copied from the current schema: table -> columns (as of migration 1, so an
# older current schema can be copied from too)
_DEFS = ("fm_table_defs", "id, definition, created_at, updated_at")
_ROWS = ("fm_table_rows", "table_id, id, tenant_id, data, created_at, updated_at")
# position is left out: the new table numbers the entries again, in the same order
_WAL = ("fm_wal_entries", "id, table_id, tenant_id, data, pipe_id, execution_id, flow_id, "
                          "step_id, error, attempts, status, created_at")
_ORDER = {"fm_wal_entries": " order by position"}


async def copy_from_current(conn: asyncpg.Connection[asyncpg.Record], current: str,
                            into: str, *, rows_from: RowsFrom) -> dict[str, int]:
    """Copy what the log does not hold from ``current`` into ``into`` (migrated)."""
    source, target = checked_schema(current), checked_schema(into)
    present = set(await tables_of(conn, current))
    wanted = [_DEFS] if rows_from == "log" else [_DEFS, _ROWS, _WAL]
    copied: dict[str, int] = {}
    async with conn.transaction():
        for table, columns in wanted:
            if table not in present:
                continue
            status = await conn.execute(
                f"insert into {target}.{table} ({columns}) select {columns} "
                f"from {source}.{table}{_ORDER.get(table, '')} on conflict do nothing")
            copied[table] = int(status.rsplit(" ", 1)[-1])
    return copied


async def project_log(log: Log, projection: PostgresProjection, topic: str, group: str,
                      ends: Sequence[int], *, batch_size: int = 2000,
                      on_progress: Callable[[RebuildProgress], None] | None = None) -> int:
    """Project ``topic`` into ``projection`` under ``group`` (from the offsets stored for
    it, 0 when none) until each partition reaches ``ends``; the events applied."""
    projector = Projector(log, topic, len(ends), projection, group=group,
                          batch_size=batch_size)
    await projector.start()
    target = sum(ends)
    try:
        for partition, end in enumerate(ends):
            while not await projector.wait_for_position(partition, end, _WAIT_SLICE_S):
                failure = projector.failure()
                if failure is not None:
                    raise RebuildError(f"projecting {topic}[{partition}] failed: "
                                       f"{type(failure).__name__}: {failure}") from failure
                if on_progress is not None:
                    on_progress(RebuildProgress(projector.applied_events,
                                                sum(min(p, e) for p, e in
                                                    zip(projector.positions, ends,
                                                        strict=True)), target))
        return projector.applied_events
    finally:
        await projector.stop()


async def swap(conn: asyncpg.Connection[asyncpg.Record], current: str, into: str,
               topic: str, group: str, *, old: str | None = None) -> str | None:
    """Rename ``current`` to ``old`` and ``into`` to ``current`` in one transaction, with
    the rebuild's offsets copied to every projector group of ``current``. The old
    name, or None when there was no current schema (``into`` is simply renamed).

    Raises :class:`RebuildError` with ``code="REBUILD_BEHIND"`` when a group of the
    current schema has projected past the rebuild (catch up and try again), and a
    plain one when the current schema also holds another topic's projection."""
    cur, new = checked_schema(current), checked_schema(into)
    old = old or old_schema_name(current)
    quoted_old = checked_schema(old)
    async with conn.transaction():
        await conn.execute("set local lock_timeout = '15s'")
        exists = "fm_projection_offsets" in await tables_of(conn, current)
        if exists:
            # a projector's batch stores its offsets last, in its transaction: with this
            # lock held, none commits, and what is stored is what has landed
            await conn.execute(f"lock table {cur}.fm_projection_offsets in share mode")
            others = [r["topic"] for r in await conn.fetch(
                f"select distinct topic from {cur}.fm_projection_offsets where topic <> $1",
                topic)]
            if others:
                raise RebuildError(
                    f'schema "{current}" also holds the projection of {", ".join(others)}; '
                    f"a rebuild from {topic} alone would lose it", schema=current)
            mine = {r["partition"]: r["next_offset"] for r in await conn.fetch(
                f"select partition, next_offset from {new}.fm_projection_offsets "
                "where group_id = $1 and topic = $2", group, topic)}
            ahead = [(r["group_id"], r["partition"]) for r in await conn.fetch(
                f"select group_id, partition, next_offset from {cur}.fm_projection_offsets "
                "where topic = $1", topic)
                if r["next_offset"] > mine.get(r["partition"], 0)]
            if ahead:
                raise RebuildError(
                    f'a projector of schema "{current}" is ahead of the rebuild (group '
                    f"{ahead[0][0]!r}, partition {ahead[0][1]})", code="REBUILD_BEHIND")
            await conn.execute(
                f"insert into {new}.fm_projection_offsets (group_id, topic, partition, "
                f"next_offset) select g.group_id, r.topic, r.partition, r.next_offset "
                f"from (select distinct group_id from {cur}.fm_projection_offsets "
                f"where topic = $2) g cross join {new}.fm_projection_offsets r "
                "where r.group_id = $1 and r.topic = $2 "
                "on conflict (group_id, topic, partition) do update "
                "set next_offset = excluded.next_offset", group, topic)
        if await conn.fetchval("select 1 from pg_namespace where nspname = $1", current):
            await conn.execute(f"alter schema {cur} rename to {quoted_old}")
        else:
            old = None
        await conn.execute(f"alter schema {new} rename to {cur}")
    return old


async def rebuild(log: Log, dsn: str, topic: str, *, current: str, into: str,
                  group: str, force: bool = False, rows_from: RowsFrom = "current",
                  do_swap: bool = False, batch_size: int = 2000,
                  on_progress: Callable[[RebuildProgress], None] | None = None
                  ) -> RebuildResult:
    """Project ``topic`` from offset 0 into the fresh schema ``into`` (see the module
    docstring) and, with ``do_swap``, make it the ``current`` schema. ``log`` is
    started."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_target(conn, into, current, force=force)
        partitions = await log.partitions_for(topic)
        ends = [await log.end_offset(topic, p) for p in range(partitions)]
        result = RebuildResult(into, group, ends)
        projection = PostgresProjection(dsn, into, pool_max=4)
        await projection.start()  # creates the schema and its tables
        try:
            result.copied = await copy_from_current(conn, current, into, rows_from=rows_from)
            result.applied_events = await project_log(
                log, projection, topic, group, ends, batch_size=batch_size,
                on_progress=on_progress)
            if do_swap:
                result.old_schema = await _catch_up_and_swap(
                    conn, log, projection, topic, current, into, group, result,
                    batch_size=batch_size)
                result.swapped = True
        finally:
            await projection.close()
        # after a swap, the rebuild is the current schema
        result.counts = await count_rows(conn, current if result.swapped else into) or {}
        if not result.swapped or result.old_schema is not None:
            result.previous = await count_rows(conn, result.old_schema or current)
        return result
    finally:
        await conn.close()


async def _catch_up_and_swap(conn: asyncpg.Connection[asyncpg.Record], log: Log,
                             projection: PostgresProjection, topic: str, current: str,
                             into: str, group: str, result: RebuildResult, *,
                             batch_size: int) -> str | None:
    for _ in range(_SWAP_ROUNDS):
        try:
            return await swap(conn, current, into, topic, group)
        except RebuildError as exc:
            if exc.code != "REBUILD_BEHIND":
                raise
        # a projector is still running on the current schema: catch up with the log's
        # end now and try again
        ends = [await log.end_offset(topic, p) for p in range(len(result.ends))]
        result.applied_events += await project_log(log, projection, topic, group, ends,
                                                   batch_size=batch_size)
        result.ends = ends
    raise RebuildError(
        f'projectors are still writing to schema "{current}": stop them (flowmonkey '
        "projector, and engines projecting into it), run the rebuild with --swap again, "
        "then start them", schema=current)
