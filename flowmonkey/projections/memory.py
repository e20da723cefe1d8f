"""The in-memory projection: the embedded mode's and the test harness's read model.

Execution state comes only from the kernel's appliers (``kernel.apply``); this module
keeps the results indexed. ``apply_events`` runs for every event the engine writes, so
it stays allocation-light: public ``Execution`` and ``Row`` objects are built on reads.
What a read returns is the caller's own (a copy, or decoded from bytes), and what it
stores (rows, WAL entries) it copies: nothing a caller does to it changes the next read.
"""

from __future__ import annotations

import builtins
import logging
import time
import uuid
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowmonkey.errors import TableError
from flowmonkey.events import names as n
from flowmonkey.events.codec import compact_event, decode_event
from flowmonkey.events.envelope import Event, ms_to_datetime
from flowmonkey.kernel.apply import apply, replay
from flowmonkey.kernel.copies import private_copy, private_event
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.form_submission import SubmissionRecord
from flowmonkey.model.job import JobRecord, JobStatus
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.model.trigger_record import TriggerRecord

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
from .form_submissions import SubmissionEntry, check_status, submission_matches, submission_of
from .job_records import JobEntry, fold_job, job_id_of, summary_matches
from .rows import (
    check_order,
    decode_cursor,
    encode_cursor,
    matches,
    prepare_filters,
    sort_rows,
    validate_row,
)
from .trigger_records import TriggerEntry, fold_trigger, trigger_id_of
from .trigger_records import summary_matches as trigger_matches

log = logging.getLogger(__name__)

# Rows and WAL entries written for a pipe.row event get ids derived from the event id,
# so rebuilding a projection from the log reproduces the same ids.
_IDS = uuid.UUID("6f1c2a51-4a57-4d0e-9a43-5f8f3c1b7e10")


def _derived_id(kind: str, source: str) -> str:
    return uuid.uuid5(_IDS, f"{kind}:{source}").hex


def _system_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _ExecutionRecord:
    tenant_id: str | None
    last_seq: int = 0
    state: ExecutionState | None = None
    # The history, each event as its encoding when that decodes back to an equal
    # event (nearly always), else as the event: bytes are invisible to the garbage
    # collector, while an event is three or more objects it walks on every full
    # collection for as long as the projection lives.
    events: list[bytes | Event] = field(default_factory=list)

    def history(self, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        """The events (after ``after_seq``, at most ``limit``), the caller's own:
        decoded, or copied when kept as objects."""
        kept = self.events
        if after_seq > 0 or limit is not None:
            # seqs run 1, 2, 3 … so event n sits at index n - 1; checked, not assumed
            start = min(max(after_seq, 0), len(kept))
            end = len(kept) if limit is None else start + max(limit, 0)
            page = [_event_of(e) for e in kept[start:end]]
            if not page or page[0].seq == after_seq + 1:
                return page
            found = [e for e in map(_event_of, kept) if e.seq > after_seq]
            return found if limit is None else found[:limit]
        return [_event_of(e) for e in kept]


def _event_of(kept: bytes | Event) -> Event:
    return decode_event(kept) if isinstance(kept, bytes) else private_event(kept)


@dataclass(slots=True)
class _StoredRow:
    id: str
    tenant_id: str | None
    data: dict[str, Any]
    created_at: int
    updated_at: int


class MemoryProjection:
    """:class:`~flowmonkey.projections.base.Projection` held in dicts.

    (Annotations below ``list`` say ``builtins.list``: inside the class body the name
    ``list`` is the method.)
    """

    def __init__(
        self, notify: Notify | None = None, clock_ms: Callable[[], int] | None = None
    ) -> None:
        self._notify = notify
        self._clock_ms = clock_ms or _system_ms
        self._executions: dict[str, _ExecutionRecord] = {}
        self._children: dict[str, list[str]] = {}
        # (created_at, id) of every execution, ascending: the listing's order, so a page
        # walks back from its cursor instead of sorting every execution per call
        self._by_creation: list[tuple[int, str]] = []
        self._rejections: dict[str, dict[str, Event]] = {}
        self._tables: dict[str, TableDef] = {}
        self._rows: dict[str, dict[str, _StoredRow]] = {}
        self._wal: dict[str, WalEntry] = {}
        self._jobs: dict[str, JobEntry] = {}
        self._jobs_by_creation: list[tuple[int, str]] = []  # ascending, as executions'
        self._jobs_of: dict[str, list[str]] = {}  # execution id -> its job ids
        self._token_executions: dict[str, str] = {}  # resume token -> its execution id
        self._triggers: dict[str, TriggerEntry] = {}
        self._submissions: dict[tuple[str, str], SubmissionEntry] = {}
        # form id -> (submitted at, submission id) of its submissions, ascending
        self._submissions_of: dict[str, list[tuple[int, str]]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------------ events

    async def apply_events(self, events: Sequence[Event]) -> None:
        self.apply_events_sync(events)

    def apply_events_sync(self, events: Sequence[Event]) -> None:
        """``apply_events`` without the coroutine, for callers already on the hot path."""
        records = self._executions
        for event in events:
            seq = event.seq
            if seq == 0:
                self._rejections.setdefault(event.execution_id, {})[event.event_id] = event
                continue
            record = records.get(event.execution_id)
            if record is None:
                record = records[event.execution_id] = _ExecutionRecord(event.tenant_id)
            elif seq <= record.last_seq:
                continue
            record.last_seq = seq
            record.events.append(compact_event(event))
            state = apply(record.state, event)
            if state is not record.state:
                if record.state is None and state is not None:
                    # created_at never changes, and is nearly always the newest: insort
                    # appends at (or near) the end
                    insort(self._by_creation, (state.created_at, state.id))
                record.state = state
                if state is not None and state.parent_execution_id is not None:
                    self._children.setdefault(state.parent_execution_id, []).append(state.id)
            if event.type == n.PIPE_ROW:
                self._pipe_row(event)
            elif event.type == n.TOKEN_CREATED:
                self._token_executions.setdefault(event.data["token"], event.execution_id)
            elif event.type.startswith("job."):
                self._job_event(event, record.state)
            elif event.type.startswith("trigger."):
                self._trigger_event(event)
            elif event.type.startswith("form."):
                self._form_event(event)

    def _form_event(self, event: Event) -> None:
        entry = submission_of(event)
        if entry is None or (entry.form_id, entry.id) in self._submissions:
            return  # not a submission, or one recorded already (the first wins)
        self._submissions[(entry.form_id, entry.id)] = entry
        insort(self._submissions_of.setdefault(entry.form_id, []),
               (entry.submitted_at, entry.id))

    def _trigger_event(self, event: Event) -> None:
        trigger_id = trigger_id_of(event)
        if trigger_id is None:
            return
        after = fold_trigger(self._triggers.get(trigger_id), event)
        if after is not None:
            self._triggers[trigger_id] = after

    def _job_event(self, event: Event, state: ExecutionState | None) -> None:
        job_id = job_id_of(event)
        if job_id is None:
            return
        before = self._jobs.get(job_id)
        after = fold_job(before, event, state.flow_id if state is not None else None)
        if after is None or after is before:
            return
        self._jobs[job_id] = after
        if before is None:
            insort(self._jobs_by_creation, (after.created_at, job_id))
            self._jobs_of.setdefault(after.execution_id, []).append(job_id)

    def _pipe_row(self, event: Event) -> None:
        """Write a pipe's row, or park it in the WAL with the reason. Never raises: a
        pipe must not stop the projection from applying the events after it."""
        d = event.data
        raw = d.get("row")
        row: dict[str, Any] = raw if isinstance(raw, dict) else {}
        table_id = str(d.get("table_id", ""))
        base = {"executionId": event.execution_id, "stepId": d.get("step_id"),
                "pipeId": d.get("pipe_id"), "tableId": table_id}
        try:
            if not isinstance(raw, dict):
                raise TableError(f"pipe {d.get('pipe_id')!r}: row is not an object")
            row_id = self._insert(table_id, row, event.tenant_id,
                                  _derived_id("row", event.event_id), event.timestamp_ms)
        except Exception as exc:  # any failure goes to the WAL, by design
            message = str(exc) or type(exc).__name__
            self._emit(n.PIPE_FAILED, {**base, "error": {"code": "PIPE_ERROR",
                                                         "message": message}})
            self._wal_append(event, table_id, row, message)
            return
        self._emit(n.PIPE_INSERTED, {**base, "rowId": row_id})

    def _wal_append(self, event: Event, table_id: str, row: dict[str, Any], error: str) -> None:
        entry_id = _derived_id("wal", event.event_id)
        if entry_id in self._wal:
            return
        d = event.data
        entry = WalEntry(
            id=entry_id, table_id=table_id, tenant_id=event.tenant_id, data=private_copy(row),
            pipe_id=str(d.get("pipe_id", "")), execution_id=event.execution_id,
            flow_id=d.get("flow_id"), step_id=d.get("step_id"), error=error,
            created_at=ms_to_datetime(event.timestamp_ms),
        )
        self._wal[entry_id] = entry
        self._emit(n.WAL_APPENDED, {"entryId": entry_id, "tableId": table_id,
                                    "executionId": event.execution_id,
                                    "pipeId": entry.pipe_id})

    def _emit(self, name: str, payload: dict[str, Any]) -> None:
        if self._notify is None:
            return
        try:
            self._notify(name, payload)
        except Exception:
            # a broken listener must not leave a batch half applied
            log.exception("projection listener failed on %s", name)

    # ------------------------------------------------------------------ executions

    def _visible(self, execution_id: str, tenant_id: str | None) -> _ExecutionRecord | None:
        record = self._executions.get(execution_id)
        if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
            return None
        return record

    async def get(self, execution_id: str, *, tenant_id: str | None = None) -> Execution | None:
        record = self._visible(execution_id, tenant_id)
        if record is None or record.state is None:
            return None
        return record.state.to_execution()

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
        if created_before_ms is not None and (after is None or (created_before_ms, "") < after):
            after = (created_before_ms, "")  # "" sorts before every id: strictly older
        wanted_status = str(status) if status is not None else None

        def wanted(st: ExecutionState) -> bool:
            return ((tenant_id is None or st.tenant_id == tenant_id)
                    and (wanted_status is None or st.status.value == wanted_status)
                    and (flow_id is None or st.flow_id == flow_id)
                    and (flow_version is None or st.flow_version == flow_version)
                    and (idempotency_key is None or st.idempotency_key == idempotency_key)
                    and (created_from_ms is None or st.created_at >= created_from_ms))

        found: builtins.list[ExecutionState] = []
        if parent_execution_id is not None:
            ids = self._children.get(parent_execution_id, [])
            children = [r.state for i in ids if (r := self._executions.get(i)) is not None]
            found = [st for st in children if st is not None and wanted(st)
                     # newest first: "after" the cursor is strictly older in (created_at, id)
                     and (after is None or (st.created_at, st.id) < after)]
            found.sort(key=lambda s: (s.created_at, s.id), reverse=True)
            del found[limit + 1:]
        else:
            # newest first from just below the cursor, until a page and one more are found
            order, records = self._by_creation, self._executions
            index = bisect_left(order, after) if after is not None else len(order)
            while index > 0 and len(found) <= limit:
                index -= 1
                if created_from_ms is not None and order[index][0] < created_from_ms:
                    break  # the rest is older still
                st = records[order[index][1]].state
                if st is not None and wanted(st):
                    found.append(st)
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
        counts = dict.fromkeys((s.value for s in ExecutionStatus), 0)
        if parent_execution_id is not None:
            ids: Iterable[str] = self._children.get(parent_execution_id, [])
        else:
            ids = (i for _, i in self._by_creation)
        for execution_id in ids:
            record = self._executions.get(execution_id)
            st = record.state if record is not None else None
            if st is None or (tenant_id is not None and st.tenant_id != tenant_id) or \
                    (flow_id is not None and st.flow_id != flow_id) or \
                    (flow_version is not None and st.flow_version != flow_version) or \
                    (created_from_ms is not None and st.created_at < created_from_ms) or \
                    (created_before_ms is not None and st.created_at >= created_before_ms):
                continue
            status = st.status.value
            if counts[status] < cap:
                counts[status] += 1
        return counts

    async def history(
        self, execution_id: str, *, tenant_id: str | None = None, after_seq: int = 0,
        limit: int | None = None,
    ) -> builtins.list[Event]:
        record = self._visible(execution_id, tenant_id)
        return record.history(after_seq, limit) if record is not None else []

    async def state_at(
        self, execution_id: str, seq: int, *, tenant_id: str | None = None
    ) -> Execution | None:
        record = self._visible(execution_id, tenant_id)
        if record is None:
            return None
        state = replay(record.history(), upto_seq=seq)
        return state.to_execution() if state is not None else None

    async def token_execution(self, token: str) -> str | None:
        return self._token_executions.get(token)

    # ------------------------------------------------------------------ jobs

    async def get_job(self, job_id: str, *, tenant_id: str | None = None) -> JobRecord | None:
        entry = self._jobs.get(job_id)
        if entry is None or (tenant_id is not None and entry.tenant_id != tenant_id):
            return None
        return entry.to_record()

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
        limit = max(1, min(limit, 10_000))
        after = decode_cursor(cursor) if cursor is not None else None
        wanted_status = str(status) if status is not None else None

        def wanted(entry: JobEntry) -> bool:
            return summary_matches(entry, tenant_id=tenant_id, status=wanted_status,
                                   type=type, execution_id=execution_id,
                                   worker_id=worker_id)

        jobs = self._jobs
        if execution_id is not None:
            # an execution has few jobs: its own index, not a walk over every job
            keys = sorted((jobs[i].created_at, i) for i in self._jobs_of.get(execution_id, ()))
        else:
            keys = self._jobs_by_creation
        found: builtins.list[JobEntry] = []
        # newest first from just below the cursor, until a page and one more are found
        index = bisect_left(keys, after) if after is not None else len(keys)
        while index > 0 and len(found) <= limit:
            index -= 1
            entry = jobs[keys[index][1]]
            if wanted(entry):
                found.append(entry)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1]
            next_cursor = encode_cursor(last.created_at, last.job_id)
        return Page[JobRecord](items=[e.to_record() for e in page], next_cursor=next_cursor)

    # ------------------------------------------------------------------ triggers

    async def get_trigger(self, trigger_id: str, *,
                          tenant_id: str | None = None) -> TriggerRecord | None:
        entry = self._triggers.get(trigger_id)
        if entry is None or (tenant_id is not None and entry.tenant_id != tenant_id):
            return None
        return entry.to_record()

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
        limit = max(1, min(limit, 10_000))
        # a trigger listing is by id: its cursor is (0, the last id)
        after = decode_cursor(cursor)[1] if cursor is not None else None
        found = sorted((e for i, e in self._triggers.items()
                        if (after is None or i > after)
                        and trigger_matches(e, tenant_id=tenant_id, kind=kind,
                                            flow_id=flow_id, enabled=enabled)),
                       key=lambda e: e.id)[:limit + 1]
        page = found[:limit]
        next_cursor = encode_cursor(0, page[-1].id) if len(found) > limit else None
        return Page[TriggerRecord](items=[e.to_record() for e in page],
                                   next_cursor=next_cursor)

    # ------------------------------------------------------------------ forms

    async def get_submission(self, form_id: str, submission_id: str, *,
                             tenant_id: str | None = None) -> SubmissionRecord | None:
        entry = self._submissions.get((form_id, submission_id))
        if entry is None or (tenant_id is not None and entry.tenant_id != tenant_id):
            return None
        return entry.to_record()

    async def list_submissions(
        self,
        form_id: str,
        *,
        status: str | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[SubmissionRecord]:
        check_status(status)
        limit = max(1, min(limit, 10_000))
        order = self._submissions_of.get(form_id, [])
        # newest first: walk back from the end, or from just before the cursor
        end = bisect_left(order, decode_cursor(cursor)) if cursor is not None else len(order)
        found: list[SubmissionEntry] = []
        for index in range(end - 1, -1, -1):
            entry = self._submissions[(form_id, order[index][1])]
            if submission_matches(entry, status=status, tenant_id=tenant_id):
                found.append(entry)
                if len(found) > limit:
                    break
        page = found[:limit]
        next_cursor = encode_cursor(page[-1].submitted_at, page[-1].id) \
            if len(found) > limit else None
        return Page[SubmissionRecord](items=[e.to_record() for e in page],
                                      next_cursor=next_cursor)

    # ------------------------------------------------------------------ tables

    def _table(self, table_id: str) -> TableDef:
        table = self._tables.get(table_id)
        if table is None:
            raise TableError(f'table "{table_id}" not found', table_id=table_id)
        return table

    async def create_table(self, table: TableDef) -> TableDef:
        if table.id in self._tables:
            raise TableError(f'table "{table.id}" already exists', table_id=table.id)
        ids = [c.id for c in table.columns]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise TableError(f'table "{table.id}": duplicate column ids {duplicates}',
                             table_id=table.id)
        now = self._clock_ms()
        table = table.model_copy(update={"created_at": table.created_at or now,
                                         "updated_at": table.updated_at or now}, deep=True)
        self._tables[table.id] = table
        self._rows[table.id] = {}
        self._emit(n.TABLE_CREATED, {"tableId": table.id,
                                     "table": table.model_dump(by_alias=True)})
        return table.model_copy(deep=True)

    async def get_table(self, table_id: str) -> TableDef | None:
        table = self._tables.get(table_id)
        return table.model_copy(deep=True) if table is not None else None

    async def list_tables(self) -> builtins.list[TableDef]:
        return [t.model_copy(deep=True) for t in sorted(self._tables.values(), key=lambda t: t.id)]

    async def delete_table(self, table_id: str) -> bool:
        if self._tables.pop(table_id, None) is None:
            return False
        self._rows.pop(table_id, None)
        self._emit(n.TABLE_DELETED, {"tableId": table_id})
        return True

    async def add_column(self, table_id: str, column: ColumnDef) -> TableDef:
        table = self._table(table_id)
        if table.column(column.id) is not None:
            raise TableError(f'table "{table_id}": column "{column.id}" already exists',
                             table_id=table_id, column_id=column.id)
        table = table.model_copy(update={"columns": [*table.columns, column.model_copy(deep=True)],
                                         "updated_at": self._clock_ms()})
        self._tables[table_id] = table
        self._emit(n.TABLE_COLUMN_ADDED, {"tableId": table_id,
                                          "column": column.model_dump(by_alias=True)})
        return table.model_copy(deep=True)

    async def remove_column(self, table_id: str, column_id: str) -> TableDef:
        table = self._table(table_id)
        if table.column(column_id) is None:
            raise TableError(f'table "{table_id}": column "{column_id}" not found',
                             table_id=table_id, column_id=column_id)
        table = table.model_copy(update={
            "columns": [c for c in table.columns if c.id != column_id],
            "updated_at": self._clock_ms()})
        self._tables[table_id] = table
        # the values go with the column, so re-adding it (maybe with another type)
        # cannot surface stale data
        for row in self._rows[table_id].values():
            if column_id in row.data:
                row.data = {k: v for k, v in row.data.items() if k != column_id}
        self._emit(n.TABLE_COLUMN_REMOVED, {"tableId": table_id, "columnId": column_id})
        return table.model_copy(deep=True)

    # ------------------------------------------------------------------ rows

    def _insert(self, table_id: str, data: dict[str, Any], tenant_id: str | None,
                row_id: str, now: int) -> str:
        clean = validate_row(self._table(table_id), data)
        rows = self._rows[table_id]
        if row_id not in rows:
            # (json columns hold the caller's, or an event's, nested objects)
            rows[row_id] = _StoredRow(row_id, tenant_id, private_copy(clean), now, now)
            self._emit(n.ROW_INSERTED, {"tableId": table_id, "rowId": row_id,
                                        "row": private_copy(clean), "tenantId": tenant_id})
        return row_id

    def _stored(self, table_id: str, row_id: str, tenant_id: str | None) -> _StoredRow | None:
        row = self._rows.get(table_id, {}).get(row_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            return None
        return row

    async def insert_row(
        self, table_id: str, data: dict[str, Any], *, tenant_id: str | None = None
    ) -> str:
        return self._insert(table_id, data, tenant_id, uuid.uuid4().hex, self._clock_ms())

    async def get_row(
        self, table_id: str, row_id: str, *, tenant_id: str | None = None
    ) -> Row | None:
        row = self._stored(table_id, row_id, tenant_id)
        return _public_row(table_id, row) if row is not None else None

    async def update_row(
        self, table_id: str, row_id: str, data: dict[str, Any], *, tenant_id: str | None = None
    ) -> bool:
        table = self._table(table_id)
        row = self._stored(table_id, row_id, tenant_id)
        if row is None:
            return False
        patch = private_copy(validate_row(table, data, partial=True))
        row.data = {**row.data, **patch}
        row.updated_at = self._clock_ms()
        self._emit(n.ROW_UPDATED, {"tableId": table_id, "rowId": row_id,
                                   "row": private_copy(row.data), "changes": private_copy(patch),
                                   "tenantId": row.tenant_id})
        return True

    async def delete_row(
        self, table_id: str, row_id: str, *, tenant_id: str | None = None
    ) -> bool:
        row = self._stored(table_id, row_id, tenant_id)
        if row is None:
            return False
        del self._rows[table_id][row_id]
        self._emit(n.ROW_DELETED, {"tableId": table_id, "rowId": row_id,
                                   "tenantId": row.tenant_id})
        return True

    async def query_rows(self, query: RowQuery) -> RowPage:
        table = self._table(query.table_id)
        filters = prepare_filters(table, query.filters)
        check_order(table, query.order_by)
        tenant_id = query.tenant_id
        found = [
            r for r in self._rows[table.id].values()
            if (tenant_id is None or r.tenant_id == tenant_id) and matches(r.data, filters)
        ]
        # (created_at, id) is the tie-break every backend uses
        found.sort(key=lambda r: (r.created_at, r.id))
        if query.order_by is not None:
            found = sort_rows(found, query.order_by, data=lambda r: r.data)
        page = found[query.offset:query.offset + query.limit]
        return RowPage(rows=[_public_row(table.id, r) for r in page], total=len(found))

    # ------------------------------------------------------------------ WAL

    async def wal_pending(self, limit: int = 100) -> builtins.list[WalEntry]:
        pending = [e for e in self._wal.values() if e.status == "pending"]
        return [_own_entry(e) for e in pending[:max(0, limit)]]

    async def wal_ack(self, entry_id: str) -> bool:
        entry = self._wal.get(entry_id)
        if entry is None:
            return False
        if entry.status != "acked":
            self._wal[entry_id] = entry.model_copy(update={"status": "acked"})
        return True

    async def wal_replay(self, limit: int = 100, *,
                         max_attempts: int | None = None) -> WalReplayResult:
        replayed = failed = discarded = 0
        for entry in await self.wal_pending(limit):
            try:
                self._insert(entry.table_id, entry.data, entry.tenant_id,
                             _derived_id("row", entry.id), self._clock_ms())
            except Exception as exc:  # stays pending with the latest reason
                failed += 1
                attempts, error = entry.attempts + 1, str(exc) or type(exc).__name__
                given_up = max_attempts is not None and attempts >= max_attempts
                self._wal[entry.id] = entry.model_copy(update={
                    "attempts": attempts, "error": error,
                    "status": "acked" if given_up else "pending"})
                if given_up:
                    discarded += 1
                    self._emit(n.PIPE_DISCARDED, {
                        "executionId": entry.execution_id, "pipeId": entry.pipe_id,
                        "tableId": entry.table_id, "attempts": attempts, "error": error})
                continue
            replayed += 1
            self._wal[entry.id] = entry.model_copy(update={"status": "acked"})
            self._emit(n.WAL_REPLAYED, {"entryId": entry.id, "tableId": entry.table_id})
        return WalReplayResult(replayed=replayed, failed=failed, discarded=discarded)

    async def wal_compact(self) -> int:
        acked = [i for i, e in self._wal.items() if e.status == "acked"]
        for entry_id in acked:
            del self._wal[entry_id]
        if acked:
            self._emit(n.WAL_COMPACTED, {"removedCount": len(acked)})
        return len(acked)

    # ------------------------------------------------------------------ harness accessors

    def execution_ids(self) -> builtins.list[str]:
        """Ids of the known executions, in the order they were created."""
        return [i for i, r in self._executions.items() if r.state is not None]

    def rejections(self, execution_id: str) -> builtins.list[Event]:
        """``command.rejected`` (seq 0) events addressed to ``execution_id``."""
        return [private_event(e) for e in self._rejections.get(execution_id, {}).values()]

    def table_rows(self, table_id: str) -> builtins.list[dict[str, Any]]:
        """Every row's data in ``table_id`` (all tenants), in insertion order."""
        return [private_copy(r.data) for r in self._rows.get(table_id, {}).values()]

    def wal_entries(self) -> builtins.list[WalEntry]:
        """Every WAL entry, pending and acked, oldest first."""
        return [_own_entry(e) for e in self._wal.values()]


def _own_entry(entry: WalEntry) -> WalEntry:
    return entry.model_copy(update={"data": private_copy(entry.data)})


def _public_row(table_id: str, row: _StoredRow) -> Row:
    return Row.model_construct(
        id=row.id, table_id=table_id, tenant_id=row.tenant_id, data=private_copy(row.data),
        created_at=ms_to_datetime(row.created_at), updated_at=ms_to_datetime(row.updated_at),
    )
