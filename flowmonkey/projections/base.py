"""The projection interface: queryable state derived from the events topic.

Every backend (``memory.py``, ``postgres.py``) implements :class:`Projection`, and one
contract suite runs against each (``tests/contract/test_projection_contract.py``).
Events are applied in batches and idempotently: an event at or below an execution's
last applied seq changes nothing, so redelivery is harmless.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import Field

from flowmonkey.events.envelope import Event
from flowmonkey.model.base import FrozenModel
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.form_submission import SubmissionRecord
from flowmonkey.model.job import JobRecord, JobStatus
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.model.trigger_record import TriggerRecord

T = TypeVar("T")

#: counts per status stop here: the explorer shows "10000+" rather than scan everything
COUNT_CAP = 10_000

FilterOp = Literal["eq", "neq", "gt", "gte", "lt", "lte", "like", "in"]


class Page(FrozenModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` back to get the next one."""

    items: list[T]
    next_cursor: str | None = None


class RowFilter(FrozenModel):
    column: str
    op: FilterOp = "eq"
    value: Any = None


class RowOrder(FrozenModel):
    column: str
    direction: Literal["asc", "desc"] = "asc"


class RowQuery(FrozenModel):
    table_id: str
    tenant_id: str | None = None
    filters: list[RowFilter] = Field(default_factory=list)
    order_by: RowOrder | None = None
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0)


class Row(FrozenModel):
    id: str
    table_id: str
    tenant_id: str | None = None
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class RowPage(FrozenModel):
    rows: list[Row]
    total: int


class WalEntry(FrozenModel):
    """A pipe row that could not be written, kept with the reason so it can be replayed."""

    id: str
    table_id: str
    tenant_id: str | None = None
    data: dict[str, Any]
    pipe_id: str
    execution_id: str
    flow_id: str | None = None
    step_id: str | None = None
    error: str
    attempts: int = 0
    status: Literal["pending", "acked"] = "pending"
    created_at: datetime


class WalReplayResult(FrozenModel):
    replayed: int
    failed: int
    # entries given up after their last allowed attempt (``wal_replay(max_attempts=…)``)
    discarded: int = 0


Notify = Callable[[str, dict[str, Any]], None]
"""Callback for store events (``pipe.inserted``, ``row.inserted``, ``wal.appended`` …)."""


@runtime_checkable
class Projection(Protocol):
    """Read models over the events: executions, audit trail, tables, WAL."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def apply_events(self, events: Sequence[Event]) -> None:
        """Apply a batch of events (any executions, in log order); idempotent by seq."""
        ...

    # executions --------------------------------------------------------------
    async def get(self, execution_id: str, *, tenant_id: str | None = None) -> Execution | None:
        """None when missing, or when ``tenant_id`` is given and differs."""
        ...

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
        """Newest first (by created_at, then id); stable cursor pagination. Filters
        combine: ``created_from_ms <= created_at < created_before_ms``; an
        ``idempotency_key`` is the caller's key as given (any flow)."""
        ...

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
        """How many executions have each status (every status named, 0 included),
        under the filters of :meth:`list`; each count stops at ``cap`` (a count equal
        to it means "at least"), so counting stays bounded on a big store."""
        ...

    async def history(
        self, execution_id: str, *, tenant_id: str | None = None, after_seq: int = 0,
        limit: int | None = None,
    ) -> builtins.list[Event]:
        """The execution's events in seq order ([] when unknown); a page of them with
        ``after_seq`` (events after that seq) and ``limit`` (at most that many)."""
        ...

    async def state_at(
        self, execution_id: str, seq: int, *, tenant_id: str | None = None
    ) -> Execution | None:
        """The execution as it was right after event ``seq`` (rebuilt with the appliers)."""
        ...

    async def token_execution(self, token: str) -> str | None:
        """The id of the execution the resume token ``token`` was issued to (whatever
        the token's status now: whether it still works is its execution's processor's
        to decide), None for a token never issued."""
        ...

    # jobs --------------------------------------------------------------------
    async def get_job(self, job_id: str, *, tenant_id: str | None = None) -> JobRecord | None:
        """The job, open or ended; None when missing, or when ``tenant_id`` is given and
        differs."""
        ...

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
        """Newest first (by created_at, then job id); stable cursor pagination, as
        :meth:`list`."""
        ...

    # triggers ----------------------------------------------------------------
    async def get_trigger(self, trigger_id: str, *,
                          tenant_id: str | None = None) -> TriggerRecord | None:
        """The registered trigger; None when missing, or when ``tenant_id`` is given and
        differs."""
        ...

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
        """By id; pass ``next_cursor`` back as ``cursor`` for the next page. Trigger
        entities are never executions: :meth:`list` and :meth:`get` never show them."""
        ...

    # forms -------------------------------------------------------------------
    async def get_submission(self, form_id: str, submission_id: str, *,
                             tenant_id: str | None = None) -> SubmissionRecord | None:
        """The form's submission; None when missing, or when ``tenant_id`` is given
        and differs."""
        ...

    async def list_submissions(
        self,
        form_id: str,
        *,
        status: str | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[SubmissionRecord]:
        """The form's submissions, newest first (by submission time, then id); pass
        ``next_cursor`` back as ``cursor`` for the next page. ``status``: one of
        :data:`~flowmonkey.model.form_submission.SUBMISSION_STATUSES` (another is a
        ValueError). Form entities are never executions: :meth:`list` and
        :meth:`get` never show them."""
        ...

    # tables ------------------------------------------------------------------
    async def create_table(self, table: TableDef) -> TableDef: ...

    async def get_table(self, table_id: str) -> TableDef | None: ...

    async def list_tables(self) -> builtins.list[TableDef]: ...

    async def delete_table(self, table_id: str) -> bool: ...

    async def add_column(self, table_id: str, column: ColumnDef) -> TableDef: ...

    async def remove_column(self, table_id: str, column_id: str) -> TableDef: ...

    async def insert_row(
        self, table_id: str, data: dict[str, Any], *, tenant_id: str | None = None
    ) -> str:
        """Validate against the table's columns (required, types) and insert; the row id."""
        ...

    async def get_row(
        self, table_id: str, row_id: str, *, tenant_id: str | None = None
    ) -> Row | None: ...

    async def update_row(
        self, table_id: str, row_id: str, data: dict[str, Any], *, tenant_id: str | None = None
    ) -> bool:
        """Merge ``data`` into the row (validated); False when the row does not exist."""
        ...

    async def delete_row(
        self, table_id: str, row_id: str, *, tenant_id: str | None = None
    ) -> bool: ...

    async def query_rows(self, query: RowQuery) -> RowPage: ...

    # WAL ---------------------------------------------------------------------
    async def wal_pending(self, limit: int = 100) -> builtins.list[WalEntry]: ...

    async def wal_ack(self, entry_id: str) -> bool: ...

    async def wal_replay(self, limit: int = 100, *,
                         max_attempts: int | None = None) -> WalReplayResult:
        """Retry pending entries: a row that now inserts is acked, else attempts += 1.

        With ``max_attempts``, an entry whose failed attempt is its ``max_attempts``-th
        is given up after its last retry: acked (compaction removes it) and reported
        as ``pipe.discarded`` (``executionId``,
        ``pipeId``, ``tableId``, ``attempts``, ``error``). Without it (the default) an
        entry stays pending until it lands or is acked."""
        ...

    async def wal_compact(self) -> int:
        """Remove acked entries; how many were removed."""
        ...
