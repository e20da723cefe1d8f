"""The Postgres projection: the read model the Kafka mode serves queries from.

Semantics are the memory projection's (``memory.py``), checked by the same contract
suite. Execution state comes only from the kernel's appliers: a batch loads the stored
``ExecutionState`` of the executions it touches, folds its events onto them with
``kernel.apply.apply`` and writes the results back, all in one transaction, together
with the consumer offsets when the caller passes them (exactly-once projection). The
offsets are a compare-and-set against the offsets the batch continues from, so a
projector never builds on a position the database lost (see ``batch_sql.WRITE_BATCH``).
"""

# Queries here are assembled from constant fragments and $n placeholders; every value
# is bound as a parameter, and the schema name reaches SQL only through search_path.
# ruff: noqa: S608

from __future__ import annotations

import builtins
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from flowmonkey.errors import FlowMonkeyError, TableError
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event, ms_to_datetime, trusted_event
from flowmonkey.kernel.apply import apply, replay
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.kernel.state_codec import state_from_json, state_to_json
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.form_submission import SubmissionRecord
from flowmonkey.model.job import JobRecord, JobStatus
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.model.trigger_record import TriggerRecord
from flowmonkey.pg.pool import SchemaPool

from .base import (
    COUNT_CAP,
    Notify,
    Page,
    Row,
    RowPage,
    RowQuery,
    WalEntry,
    WalReplayResult,
)
from .batch_sql import (
    EVENT_COLUMNS,
    EVENT_WIDTH,
    EXECUTION_WIDTH,
    OFFSET_WIDTH,
    WRITE_BATCH,
)
from .batch_sql import json_text as _json_text
from .form_submission_sql import get_submission as _get_submission
from .form_submission_sql import list_submissions as _list_submissions
from .form_submission_sql import write_submissions
from .job_sql import JobBatch
from .job_sql import get_job as _get_job
from .job_sql import list_jobs as _list_jobs
from .row_sql import QueryParams, filter_sql, order_sql
from .rows import check_order, decode_cursor, encode_cursor, prepare_filters, validate_row
from .token_sql import TOKEN_EVENTS, token_execution, write_token_event
from .trigger_sql import TriggerBatch
from .trigger_sql import get_trigger as _get_trigger
from .trigger_sql import list_triggers as _list_triggers

log = logging.getLogger(__name__)

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Offsets = dict[tuple[str, int], int]
_Note = tuple[str, dict[str, Any]]

# the same namespace as memory.py: rebuilding either projection gives the same ids
_IDS = uuid.UUID("6f1c2a51-4a57-4d0e-9a43-5f8f3c1b7e10")
def _derived_id(kind: str, source: str) -> str:
    return uuid.uuid5(_IDS, f"{kind}:{source}").hex


def _system_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(value: str | None) -> str | None:
    """``value`` with U+FFFD for each U+0000, which PostgreSQL's text cannot hold."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value \
        else value


async def _set_codecs(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec("jsonb", encoder=_json_text, decoder=orjson.loads,
                              schema="pg_catalog")


class ProjectionNotStartedError(FlowMonkeyError):
    code = "PROJECTION_NOT_STARTED"


class ProjectionStoreError(FlowMonkeyError):
    """Postgres refused or lost a batch; nothing of it (rows, offsets) was stored."""

    code = "PROJECTION_STORE_ERROR"


class OffsetConflictError(FlowMonkeyError):
    """A batch continues from an offset the store does not have: a stored offset is
    behind the one the batch was read from (the store lost commits, or someone reset
    it). Nothing of the batch was stored; ``stored`` holds what is stored
    ((topic, partition) -> next offset, None where nothing is), to re-read from."""

    code = "PROJECTION_OFFSET_CONFLICT"

    def __init__(self, message: str, *, stored: Mapping[tuple[str, int], int | None],
                 since: Mapping[tuple[str, int], int], **details: Any) -> None:
        super().__init__(message, **details)
        self.stored = dict(stored)
        self.since = dict(since)


_STORE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
_STATE_CACHE_SIZE = 50_000  # executions whose last written state is kept decoded


@dataclass(slots=True)
class _Loaded:
    """One execution as a batch sees it: stored, then with the batch's events folded in."""

    tenant_id: str | None
    last_seq: int
    state: ExecutionState | None
    dirty: bool = False


_INSERT_REJECTION = (
    "insert into fm_rejections (execution_id, event_id, type, version, timestamp_ms, "
    "tenant_id, command_id, data) values ($1, $2, $3, $4, $5, $6, $7, $8) "
    "on conflict do nothing")
_INSERT_ROW = ("insert into fm_table_rows (table_id, id, tenant_id, data, created_at, "
               "updated_at) values ($1, $2, $3, $4, $5, $5) on conflict do nothing")
_INSERT_WAL = """
insert into fm_wal_entries (id, table_id, tenant_id, data, pipe_id, execution_id, flow_id,
    step_id, error, created_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict do nothing"""
_WAL_COLUMNS = ("id, table_id, tenant_id, data, pipe_id, execution_id, flow_id, step_id, "
                "error, attempts, status, created_at")
_ROW_COLUMNS = "id, tenant_id, data, created_at, updated_at"


SYNCHRONOUS_COMMIT_VALUES = ("off", "local", "remote_write", "on", "remote_apply")
DEFAULT_SYNCHRONOUS_COMMIT = "off"


class PostgresProjection:
    """:class:`~flowmonkey.projections.base.Projection` in a Postgres schema (asyncpg).

    ``synchronous_commit`` is PostgreSQL's setting for the projector's batch
    transactions only. ``"off"`` (the default) does not wait for the commit to reach
    the disk: a server crash may then lose the last acknowledged batches, rows and
    offsets together, and the projector notices it (the offsets compare-and-set) and
    applies them again from the log. ``"on"`` waits for every batch's flush.
    """

    def __init__(
        self,
        dsn: str,
        schema: str = "flowmonkey",
        notify: Notify | None = None,
        pool_min: int = 1,
        pool_max: int = 10,
        *,
        clock_ms: Callable[[], int] | None = None,
        synchronous_commit: str = DEFAULT_SYNCHRONOUS_COMMIT,
    ) -> None:
        if synchronous_commit not in SYNCHRONOUS_COMMIT_VALUES:
            raise ValueError(f"synchronous_commit must be one of "
                             f"{', '.join(SYNCHRONOUS_COMMIT_VALUES)}, not "
                             f"{synchronous_commit!r}")
        self._synchronous_commit = synchronous_commit
        self._connections_opened = 0
        self._store = SchemaPool(
            dsn, schema, min_size=pool_min, max_size=pool_max, init=self._init_connection,
            not_started=lambda: ProjectionNotStartedError(
                "the Postgres projection is not started: await start() first"))
        self.schema = schema
        self._state_cache: OrderedDict[str, ExecutionState] = OrderedDict()
        self._notify = notify
        self._clock_ms = clock_ms or _system_ms

    async def start(self) -> None:
        await self._store.start()

    async def _init_connection(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        self._connections_opened += 1
        await _set_codecs(conn)

    @property
    def connections_opened(self) -> int:
        """How many connections the pool has opened so far. It grows when the pool
        replaces connections that broke: after PostgreSQL restarted, or restarted its
        server processes after one crashed (``pg_postmaster_start_time()`` stays the
        same then, although commits made with ``synchronous_commit`` off can be lost).
        The projector reads the stored offsets again when it grows."""
        return self._connections_opened

    async def close(self) -> None:
        await self._store.close()

    @property
    def _pool(self) -> asyncpg.Pool[asyncpg.Record]:
        return self._store.pool

    def _emit(self, notes: Sequence[_Note]) -> None:
        if self._notify is None:
            return
        for name, payload in notes:
            try:
                self._notify(name, payload)
            except Exception:
                log.exception("projection listener failed on %s", name)

    # ------------------------------------------------------------------ events

    async def apply_events(self, events: Sequence[Event]) -> None:
        await self.apply_events_with_offsets(events, None, {}, since={})

    async def apply_events_with_offsets(
        self, events: Sequence[Event], group: str | None, offsets: Offsets, *,
        since: Mapping[tuple[str, int], int],
    ) -> None:
        """Apply ``events`` and store ``offsets`` ((topic, partition) -> next offset) for
        consumer ``group`` in one transaction: both land or neither does.

        ``since`` gives, for each partition of ``offsets``, the offset the batch
        continues from (the stored offset the caller last read or wrote; 0 for none).
        If a stored offset is behind it, the store has lost what the caller built on:
        nothing is stored and :class:`OffsetConflictError` says what is stored."""
        if offsets.keys() != since.keys():
            raise ValueError("since must give the offset each partition of offsets "
                             f"continues from: {sorted(since)} != {sorted(offsets)}")
        notes: builtins.list[_Note] = []
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                states = await self._apply_txn(
                    conn, events, notes,
                    (group, offsets, since) if group is not None else None)
        except _STORE_ERRORS as exc:
            first = events[0].event_id if events else None
            raise ProjectionStoreError(
                f"could not store a batch of {len(events)} events (first {first!r}) in "
                f'schema "{self.schema}": {type(exc).__name__}: {exc}',
                schema=self.schema, events=len(events), offsets=dict(offsets)) from exc
        # only after the commit: a rolled-back batch announced and cached nothing
        self._remember(states)
        self._emit(notes)

    async def committed_offset(self, group: str, topic: str, partition: int) -> int | None:
        """The next offset to consume, as last stored with a batch; None if never.
        Raises :class:`ProjectionStoreError` when Postgres cannot be read."""
        try:
            value: int | None = await self._pool.fetchval(
                "select next_offset from fm_projection_offsets "
                "where group_id = $1 and topic = $2 and partition = $3",
                group, topic, partition)
        except _STORE_ERRORS as exc:
            raise ProjectionStoreError(
                f"could not read the offset stored for group {group!r}, {topic}"
                f'[{partition}] in schema "{self.schema}": {type(exc).__name__}: {exc}',
                schema=self.schema) from exc
        return value

    async def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Every partition's stored next offset for ``group`` on ``topic`` (partitions
        with none are left out), in one query. Raises :class:`ProjectionStoreError`
        when Postgres cannot be read."""
        try:
            rows = await self._pool.fetch(
                "select partition, next_offset from fm_projection_offsets "
                "where group_id = $1 and topic = $2", group, topic)
        except _STORE_ERRORS as exc:
            raise ProjectionStoreError(
                f"could not read the offsets stored for group {group!r} on {topic} in "
                f'schema "{self.schema}": {type(exc).__name__}: {exc}',
                schema=self.schema) from exc
        return {r["partition"]: r["next_offset"] for r in rows}

    async def _apply_txn(self, conn: Conn, events: Sequence[Event],
                         notes: builtins.list[_Note],
                         offsets: tuple[str, Offsets, Mapping[tuple[str, int], int]] | None
                         ) -> dict[str, ExecutionState]:
        ids = list(dict.fromkeys(e.execution_id for e in events if e.seq != 0))
        loaded: dict[str, _Loaded] = {}
        if ids:
            # sorted, so concurrent batches lock rows in the same order
            stale: list[str] = []
            cache = self._state_cache
            for r in await conn.fetch(
                    "select id, tenant_id, seq from fm_executions "
                    "where id = any($1::text[]) order by id for update", sorted(ids)):
                cached = cache.get(r["id"])
                if cached is not None and cached.seq == r["seq"]:
                    # the stored row is the state this process wrote last: no need to
                    # read and decode its JSON again (a clone: applying mutates)
                    loaded[r["id"]] = _Loaded(r["tenant_id"], r["seq"], cached.clone())
                else:
                    loaded[r["id"]] = _Loaded(r["tenant_id"], r["seq"], None)
                    stale.append(r["id"])
            if stale:
                for r in await conn.fetch(
                        "select id, state from fm_executions where id = any($1::text[])",
                        stale):
                    if r["state"] is not None:
                        loaded[r["id"]].state = state_from_json(r["state"])
        jobs = JobBatch()
        await jobs.load(conn, events)
        triggers = TriggerBatch()
        await triggers.load(conn, events)
        fresh: list[Event] = []
        for event in events:
            if event.seq == 0:
                continue
            record = loaded.get(event.execution_id)
            if record is None:
                record = loaded[event.execution_id] = _Loaded(event.tenant_id, 0, None)
            elif event.seq <= record.last_seq:
                continue
            record.last_seq = event.seq
            record.dirty = True
            record.state = apply(record.state, event)
            fresh.append(event)
            if event.type.startswith("job."):
                jobs.fold(event, record.state.flow_id if record.state is not None else None)
            elif event.type.startswith("trigger."):
                triggers.fold(event)
        rejections = [e for e in events if e.seq == 0]
        if rejections:
            # a command refused for a NUL in an id carries it (text cannot hold U+0000)
            await conn.executemany(_INSERT_REJECTION, [
                (_text(e.execution_id), _text(e.event_id), e.type, e.version, e.timestamp_ms,
                 _text(e.tenant_id), _text(e.command_id), e.data) for e in rejections])
        group, positions, since = offsets if offsets is not None else ("", {}, {})
        stored = await conn.fetchval(
            WRITE_BATCH,
            *_columns([_event_values(e) for e in fresh], EVENT_WIDTH),
            *_columns([_execution_values(i, r) for i, r in loaded.items() if r.dirty],
                      EXECUTION_WIDTH),
            *_columns([(group, topic, partition, since[(topic, partition)], offset)
                       for (topic, partition), offset in positions.items()], OFFSET_WIDTH),
            self._synchronous_commit)
        if stored != len(positions):
            await self._offset_conflict(conn, group, since)
        await jobs.write(conn)
        await triggers.write(conn)
        await write_submissions(conn, fresh)
        for event in fresh:
            if event.type in TOKEN_EVENTS:
                await write_token_event(conn, event)
            elif event.type == n.PIPE_ROW:
                await self._pipe_row_txn(conn, event, notes)
        return {i: r.state for i, r in loaded.items() if r.dirty and r.state is not None}

    def _remember(self, states: Mapping[str, ExecutionState]) -> None:
        """Keep the committed states (only committed ones: a rolled-back batch's states
        were never stored) for the next batch, newest last, up to the cache's size."""
        cache = self._state_cache
        for execution_id, state in states.items():
            cache.pop(execution_id, None)
            cache[execution_id] = state
        while len(cache) > _STATE_CACHE_SIZE:
            del cache[next(iter(cache))]

    async def _offset_conflict(self, conn: Conn, group: str,
                               since: Mapping[tuple[str, int], int]) -> None:
        """Raise :class:`OffsetConflictError` (rolling the batch back) with the offsets
        stored for ``since``'s partitions."""
        stored: dict[tuple[str, int], int | None] = {}
        for topic, partition in since:
            stored[(topic, partition)] = await conn.fetchval(
                "select next_offset from fm_projection_offsets "
                "where group_id = $1 and topic = $2 and partition = $3",
                group, topic, partition)
        behind = ", ".join(
            f"{topic}[{partition}] stored {stored[(topic, partition)]} < {offset}"
            for (topic, partition), offset in sorted(since.items())
            if (stored[(topic, partition)] or 0) < offset)
        raise OffsetConflictError(
            f'the offsets stored for group "{group}" in schema "{self.schema}" are behind '
            f"the ones this batch continues from ({behind or 'changed meanwhile'}): "
            "commits were lost or the offsets were reset; nothing of the batch was "
            "stored, read again from the stored offsets",
            stored=stored, since=since, schema=self.schema, group=group)

    async def _pipe_row_txn(self, conn: Conn, event: Event, notes: builtins.list[_Note]) -> None:
        """Write a pipe's row, or park it in the WAL with the reason. A bad row never
        fails the batch: the insert runs in a savepoint."""
        d = event.data
        raw = d.get("row")
        row: dict[str, Any] = raw if isinstance(raw, dict) else {}
        table_id = str(d.get("table_id", ""))
        base = {"executionId": event.execution_id, "stepId": d.get("step_id"),
                "pipeId": d.get("pipe_id"), "tableId": table_id}
        try:
            if not isinstance(raw, dict):
                raise TableError(f"pipe {d.get('pipe_id')!r}: row is not an object")
            row_id = await self._insert_txn(conn, table_id, row, event.tenant_id,
                                            _derived_id("row", event.event_id),
                                            event.timestamp_ms, notes)
        except (FlowMonkeyError, asyncpg.PostgresError, ValueError, TypeError) as exc:
            message = str(exc) or type(exc).__name__
            notes.append((n.PIPE_FAILED, {**base, "error": {"code": "PIPE_ERROR",
                                                           "message": message}}))
            entry_id = _derived_id("wal", event.event_id)
            status = await conn.execute(
                _INSERT_WAL, entry_id, table_id, event.tenant_id, row,
                str(d.get("pipe_id", "")), event.execution_id, d.get("flow_id"),
                d.get("step_id"), message, event.timestamp_ms)
            if _count(status):
                notes.append((n.WAL_APPENDED, {
                    "entryId": entry_id, "tableId": table_id,
                    "executionId": event.execution_id, "pipeId": str(d.get("pipe_id", ""))}))
            return
        notes.append((n.PIPE_INSERTED, {**base, "rowId": row_id}))

    # ------------------------------------------------------------------ executions

    async def _visible_tenant(self, conn: Conn, execution_id: str,
                              tenant_id: str | None) -> bool:
        row = await conn.fetchrow("select tenant_id from fm_executions where id = $1",
                                  execution_id)
        return row is not None and (tenant_id is None or row["tenant_id"] == tenant_id)

    async def get(self, execution_id: str, *, tenant_id: str | None = None) -> Execution | None:
        row = await self._pool.fetchrow(
            "select tenant_id, state from fm_executions where id = $1", execution_id)
        if row is None or row["state"] is None:
            return None
        if tenant_id is not None and row["tenant_id"] != tenant_id:
            return None
        return state_from_json(row["state"]).to_execution()

    async def list(
        self,
        *,
        tenant_id: str | None = None,
        status: ExecutionStatus | str | None = None,
        flow_id: str | None = None,
        parent_execution_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        flow_version: str | None = None,
        created_from_ms: int | None = None,
        created_before_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> Page[Execution]:
        limit = max(1, min(limit, 10_000))
        after = decode_cursor(cursor) if cursor is not None else None
        params = QueryParams()
        where = _execution_filters(params, tenant_id=tenant_id, flow_id=flow_id,
                                   flow_version=flow_version,
                                   parent_execution_id=parent_execution_id,
                                   created_from_ms=created_from_ms,
                                   created_before_ms=created_before_ms)
        for column, value in (("status", str(status) if status is not None else None),
                              ("idempotency_key", idempotency_key)):
            if value is not None:
                where.append(f"{column} = {params.add(value)}::text")
        if after is not None:
            # newest first: "after" the cursor means strictly older in (created_at, id)
            where.append(f"(created_at, id) < ({params.add(after[0])}::bigint, "
                         f"{params.add(after[1])}::text)")
        sql = (f"select state from fm_executions where {' and '.join(where)} "
               f"order by created_at desc, id desc limit {params.add(limit + 1)}::int")
        found = [state_from_json(r["state"]) for r in await self._pool.fetch(sql, *params)]
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1]
            next_cursor = encode_cursor(last.created_at, last.id)
        return Page[Execution](items=[s.to_execution() for s in page], next_cursor=next_cursor)

    async def count_by_status(
        self,
        *,
        tenant_id: str | None = None,
        flow_id: str | None = None,
        flow_version: str | None = None,
        parent_execution_id: str | None = None,
        created_from_ms: int | None = None,
        created_before_ms: int | None = None,
        cap: int = COUNT_CAP,
    ) -> dict[str, int]:
        params = QueryParams([s.value for s in ExecutionStatus])
        where = _execution_filters(params, tenant_id=tenant_id, flow_id=flow_id,
                                   flow_version=flow_version,
                                   parent_execution_id=parent_execution_id,
                                   created_from_ms=created_from_ms,
                                   created_before_ms=created_before_ms)
        # one capped count per status (each reads at most `cap` rows of its status)
        sql = (f"select s.status, (select count(*) from (select 1 from fm_executions "
               f"where status = s.status and {' and '.join(where)} "
               f"limit {params.add(max(1, cap))}::int) capped) as n "
               "from unnest($1::text[]) as s(status)")
        rows = await self._pool.fetch(sql, *params)
        return {r["status"]: int(r["n"]) for r in rows}

    async def _events(self, execution_id: str, tenant_id: str | None,
                      upto_seq: int | None, after_seq: int = 0,
                      limit: int | None = None) -> builtins.list[Event] | None:
        async with self._pool.acquire() as conn:
            if not await self._visible_tenant(conn, execution_id, tenant_id):
                return None
            rows = await conn.fetch(
                f"select {EVENT_COLUMNS} from fm_events where execution_id = $1 "
                "and ($2::bigint is null or seq <= $2) and seq > $3::bigint order by seq "
                "limit $4::bigint", execution_id, upto_seq, after_seq,
                None if limit is None else max(limit, 0))
        return [trusted_event(r["type"], r["version"], r["execution_id"], r["seq"],
                              r["event_id"], r["timestamp_ms"], r["tenant_id"],
                              r["command_id"], r["data"]) for r in rows]

    async def history(
        self, execution_id: str, *, tenant_id: str | None = None, after_seq: int = 0,
        limit: int | None = None,
    ) -> builtins.list[Event]:
        return await self._events(execution_id, tenant_id, None, after_seq, limit) or []

    async def state_at(
        self, execution_id: str, seq: int, *, tenant_id: str | None = None
    ) -> Execution | None:
        events = await self._events(execution_id, tenant_id, seq)
        if events is None:
            return None
        state = replay(events, upto_seq=seq)
        return state.to_execution() if state is not None else None

    # ------------------------------------------------------------------ jobs

    async def get_job(self, job_id: str, *, tenant_id: str | None = None) -> JobRecord | None:
        return await _get_job(self._pool, job_id, tenant_id)

    async def list_jobs(
        self,
        *,
        tenant_id: str | None = None,
        status: JobStatus | str | None = None,
        type: str | None = None,
        execution_id: str | None = None,
        worker_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[JobRecord]:
        return await _list_jobs(self._pool, tenant_id=tenant_id, status=status, type=type,
                                execution_id=execution_id, worker_id=worker_id,
                                limit=limit, cursor=cursor)

    async def token_execution(self, token: str) -> str | None:
        return await token_execution(self._pool, token)

    # ------------------------------------------------------------------ triggers

    async def get_trigger(self, trigger_id: str, *,
                          tenant_id: str | None = None) -> TriggerRecord | None:
        return await _get_trigger(self._pool, trigger_id, tenant_id)

    async def list_triggers(
        self,
        *,
        tenant_id: str | None = None,
        kind: str | None = None,
        flow_id: str | None = None,
        enabled: bool | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[TriggerRecord]:
        return await _list_triggers(self._pool, tenant_id=tenant_id, kind=kind,
                                    flow_id=flow_id, enabled=enabled, limit=limit,
                                    cursor=cursor)

    # ------------------------------------------------------------------ forms

    async def get_submission(self, form_id: str, submission_id: str, *,
                             tenant_id: str | None = None) -> SubmissionRecord | None:
        return await _get_submission(self._pool, form_id, submission_id, tenant_id)

    async def list_submissions(
        self,
        form_id: str,
        *,
        status: str | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[SubmissionRecord]:
        return await _list_submissions(self._pool, form_id, status=status,
                                       tenant_id=tenant_id, limit=limit, cursor=cursor)

    # ------------------------------------------------------------------ tables

    async def _table_txn(self, conn: Conn, table_id: str, *, lock: bool = False) -> TableDef:
        sql = "select definition from fm_table_defs where id = $1"
        raw = await conn.fetchval(sql + (" for update" if lock else ""), table_id)
        if raw is None:
            raise TableError(f'table "{table_id}" not found', table_id=table_id)
        return TableDef.model_validate(raw)

    async def _save_table_txn(self, conn: Conn, table: TableDef) -> None:
        await conn.execute("update fm_table_defs set definition = $2, updated_at = $3 "
                           "where id = $1", table.id, table.model_dump(mode="json"),
                           table.updated_at)

    async def create_table(self, table: TableDef) -> TableDef:
        ids = [c.id for c in table.columns]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise TableError(f'table "{table.id}": duplicate column ids {duplicates}',
                             table_id=table.id)
        now = self._clock_ms()
        table = table.model_copy(update={"created_at": table.created_at or now,
                                         "updated_at": table.updated_at or now})
        status = await self._pool.execute(
            "insert into fm_table_defs (id, definition, created_at, updated_at) "
            "values ($1, $2, $3, $4) on conflict do nothing", table.id,
            table.model_dump(mode="json"), table.created_at, table.updated_at)
        if not _count(status):
            raise TableError(f'table "{table.id}" already exists', table_id=table.id)
        self._emit([(n.TABLE_CREATED, {"tableId": table.id,
                                       "table": table.model_dump(by_alias=True)})])
        return table

    async def get_table(self, table_id: str) -> TableDef | None:
        raw = await self._pool.fetchval("select definition from fm_table_defs where id = $1",
                                        table_id)
        return TableDef.model_validate(raw) if raw is not None else None

    async def list_tables(self) -> builtins.list[TableDef]:
        rows = await self._pool.fetch("select definition from fm_table_defs order by id")
        return [TableDef.model_validate(r["definition"]) for r in rows]

    async def delete_table(self, table_id: str) -> bool:
        status = await self._pool.execute("delete from fm_table_defs where id = $1", table_id)
        if not _count(status):
            return False
        self._emit([(n.TABLE_DELETED, {"tableId": table_id})])
        return True

    async def add_column(self, table_id: str, column: ColumnDef) -> TableDef:
        async with self._pool.acquire() as conn, conn.transaction():
            table = await self._table_txn(conn, table_id, lock=True)
            if table.column(column.id) is not None:
                raise TableError(f'table "{table_id}": column "{column.id}" already exists',
                                 table_id=table_id, column_id=column.id)
            table = table.model_copy(update={"columns": [*table.columns, column],
                                             "updated_at": self._clock_ms()})
            await self._save_table_txn(conn, table)
        self._emit([(n.TABLE_COLUMN_ADDED, {"tableId": table_id,
                                            "column": column.model_dump(by_alias=True)})])
        return table

    async def remove_column(self, table_id: str, column_id: str) -> TableDef:
        async with self._pool.acquire() as conn, conn.transaction():
            table = await self._table_txn(conn, table_id, lock=True)
            if table.column(column_id) is None:
                raise TableError(f'table "{table_id}": column "{column_id}" not found',
                                 table_id=table_id, column_id=column_id)
            table = table.model_copy(update={
                "columns": [c for c in table.columns if c.id != column_id],
                "updated_at": self._clock_ms()})
            await self._save_table_txn(conn, table)
            # the values go with the column, so re-adding it cannot surface stale data
            await conn.execute("update fm_table_rows set data = data - $2::text "
                               "where table_id = $1 and data ? $2::text", table_id, column_id)
        self._emit([(n.TABLE_COLUMN_REMOVED, {"tableId": table_id, "columnId": column_id})])
        return table

    # ------------------------------------------------------------------ rows

    async def _insert_txn(self, conn: Conn, table_id: str, data: dict[str, Any],
                          tenant_id: str | None, row_id: str, now: int,
                          notes: builtins.list[_Note]) -> str:
        clean = validate_row(await self._table_txn(conn, table_id), data)
        # a savepoint: inside a batch, a failed insert must not abort the transaction
        async with conn.transaction():
            status = await conn.execute(_INSERT_ROW, table_id, row_id, tenant_id, clean, now)
        if _count(status):
            notes.append((n.ROW_INSERTED, {"tableId": table_id, "rowId": row_id,
                                           "row": dict(clean), "tenantId": tenant_id}))
        return row_id

    async def insert_row(
        self, table_id: str, data: dict[str, Any], *, tenant_id: str | None = None
    ) -> str:
        notes: builtins.list[_Note] = []
        async with self._pool.acquire() as conn, conn.transaction():
            row_id = await self._insert_txn(conn, table_id, data, tenant_id,
                                            uuid.uuid4().hex, self._clock_ms(), notes)
        self._emit(notes)
        return row_id

    async def get_row(
        self, table_id: str, row_id: str, *, tenant_id: str | None = None
    ) -> Row | None:
        r = await self._pool.fetchrow(
            f"select {_ROW_COLUMNS} from fm_table_rows where table_id = $1 and id = $2 "
            "and ($3::text is null or tenant_id = $3)", table_id, row_id, tenant_id)
        return _public_row(table_id, r) if r is not None else None

    async def update_row(
        self, table_id: str, row_id: str, data: dict[str, Any], *, tenant_id: str | None = None
    ) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            table = await self._table_txn(conn, table_id)
            found = await conn.fetchrow(
                "select tenant_id from fm_table_rows where table_id = $1 and id = $2 "
                "and ($3::text is null or tenant_id = $3) for update",
                table_id, row_id, tenant_id)
            if found is None:
                return False
            patch = validate_row(table, data, partial=True)
            merged = await conn.fetchval(
                "update fm_table_rows set data = data || $3::jsonb, updated_at = $4 "
                "where table_id = $1 and id = $2 returning data",
                table_id, row_id, patch, self._clock_ms())
        self._emit([(n.ROW_UPDATED, {"tableId": table_id, "rowId": row_id, "row": merged,
                                     "changes": patch, "tenantId": found["tenant_id"]})])
        return True

    async def delete_row(
        self, table_id: str, row_id: str, *, tenant_id: str | None = None
    ) -> bool:
        found = await self._pool.fetchrow(
            "delete from fm_table_rows where table_id = $1 and id = $2 "
            "and ($3::text is null or tenant_id = $3) returning tenant_id",
            table_id, row_id, tenant_id)
        if found is None:
            return False
        self._emit([(n.ROW_DELETED, {"tableId": table_id, "rowId": row_id,
                                     "tenantId": found["tenant_id"]})])
        return True

    async def query_rows(self, query: RowQuery) -> RowPage:
        async with self._pool.acquire() as conn:
            table = await self._table_txn(conn, query.table_id)
            filters = prepare_filters(table, query.filters)
            check_order(table, query.order_by)
            params = QueryParams(table.id)
            where = ["table_id = $1"]
            if query.tenant_id is not None:
                where.append(f"tenant_id = {params.add(query.tenant_id)}::text")
            where.extend(filter_sql(f, params) for f in filters)
            condition = " and ".join(where)
            total: int = await conn.fetchval(
                f"select count(*) from fm_table_rows where {condition}", *params)
            order = order_sql(query.order_by, params)
            rows = await conn.fetch(
                f"select {_ROW_COLUMNS} from fm_table_rows where {condition} order by {order} "
                f"limit {params.add(query.limit)}::int offset {params.add(query.offset)}::int",
                *params)
        return RowPage(rows=[_public_row(table.id, r) for r in rows], total=total)

    # ------------------------------------------------------------------ WAL

    async def wal_pending(self, limit: int = 100) -> builtins.list[WalEntry]:
        rows = await self._pool.fetch(
            f"select {_WAL_COLUMNS} from fm_wal_entries where status = 'pending' "
            "order by position limit $1", max(0, limit))
        return [WalEntry.model_construct(**{**dict(r), "created_at": ms_to_datetime(
            r["created_at"])}) for r in rows]

    async def wal_ack(self, entry_id: str) -> bool:
        status = await self._pool.execute(
            "update fm_wal_entries set status = 'acked' where id = $1", entry_id)
        return _count(status) > 0

    async def wal_replay(self, limit: int = 100, *,
                         max_attempts: int | None = None) -> WalReplayResult:
        replayed = failed = discarded = 0
        pending = await self.wal_pending(limit)  # before acquiring: a pool of one suffices
        async with self._pool.acquire() as conn:
            for entry in pending:
                notes: builtins.list[_Note] = []
                landed = False
                async with conn.transaction():
                    try:
                        await self._insert_txn(conn, entry.table_id, entry.data,
                                               entry.tenant_id, _derived_id("row", entry.id),
                                               self._clock_ms(), notes)
                    except (FlowMonkeyError, asyncpg.PostgresError, ValueError,
                            TypeError) as exc:  # stays pending with the latest reason
                        failed += 1
                        notes = []  # (nothing of the failed insert is told)
                        error = str(exc) or type(exc).__name__
                        attempts = await conn.fetchval(
                            "update fm_wal_entries set attempts = attempts + 1, error = $2, "
                            "status = case when $3::int is not null and attempts + 1 >= $3 "
                            "then 'acked' else status end where id = $1 returning attempts",
                            entry.id, error, max_attempts)
                        if max_attempts is not None and attempts is not None \
                                and attempts >= max_attempts:  # given up
                            notes = [(n.PIPE_DISCARDED, {
                                "executionId": entry.execution_id, "pipeId": entry.pipe_id,
                                "tableId": entry.table_id, "attempts": attempts,
                                "error": error})]
                    else:
                        landed = True
                        await conn.execute("update fm_wal_entries set status = 'acked' "
                                           "where id = $1", entry.id)
                # told once the entry's transaction committed
                if landed:
                    replayed += 1
                    self._emit([*notes, (n.WAL_REPLAYED, {"entryId": entry.id,
                                                           "tableId": entry.table_id})])
                elif notes:
                    discarded += 1
                    self._emit(notes)
        return WalReplayResult(replayed=replayed, failed=failed, discarded=discarded)

    async def wal_compact(self) -> int:
        removed = _count(await self._pool.execute(
            "delete from fm_wal_entries where status = 'acked'"))
        if removed:
            self._emit([(n.WAL_COMPACTED, {"removedCount": removed})])
        return removed


# --------------------------------------------------------------------------- helpers


def _count(status: str) -> int:
    """The row count in a command status such as ``INSERT 0 1`` or ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """``rows`` of ``width`` values as column lists, the parameters of an unnest()."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _event_values(e: Event) -> tuple[Any, ...]:
    return (e.execution_id, e.seq, e.type, e.version, e.event_id, e.timestamp_ms,
            e.tenant_id, e.command_id, _json_text(e.data))


def _execution_values(execution_id: str, record: _Loaded) -> tuple[Any, ...]:
    st = record.state
    if st is None:  # events for an execution whose creation we have not seen
        return (execution_id, record.tenant_id, None, None, None, None, None, None, None,
                None, record.last_seq, None)
    return (execution_id, record.tenant_id, st.flow_id, st.flow_version, st.status.value,
            st.parent_execution_id, st.idempotency_key, st.wake_at, st.created_at,
            st.updated_at, record.last_seq, _json_text(state_to_json(st)))


def _public_row(table_id: str, r: asyncpg.Record) -> Row:
    return Row.model_construct(
        id=r["id"], table_id=table_id, tenant_id=r["tenant_id"], data=r["data"],
        created_at=ms_to_datetime(r["created_at"]),
        updated_at=ms_to_datetime(r["updated_at"]))


def _execution_filters(params: QueryParams, *, tenant_id: str | None, flow_id: str | None,
                       flow_version: str | None, parent_execution_id: str | None,
                       created_from_ms: int | None, created_before_ms: int | None,
                       ) -> builtins.list[str]:
    """The ``where`` terms of an executions query that ``list`` and
    ``count_by_status`` share."""
    where = ["state is not null"]
    for column, value in (("tenant_id", tenant_id), ("flow_id", flow_id),
                          ("flow_version", flow_version),
                          ("parent_execution_id", parent_execution_id)):
        if value is not None:
            where.append(f"{column} = {params.add(value)}::text")
    if created_from_ms is not None:
        where.append(f"created_at >= {params.add(created_from_ms)}::bigint")
    if created_before_ms is not None:
        where.append(f"created_at < {params.add(created_before_ms)}::bigint")
    return where
