"""Replay for audit (FEATURES F7, DESIGN §5): executions rebuilt from the events topic,
compared with the Postgres projection, and their histories exported.

The events topic is the truth. An execution's events live in the events partition
its id hashes to (the key is the execution id); its history is the events of that
partition with its key, taken in log order the way the kernel folds them: an event
at or below the last kept seq is a redelivery and changes nothing, so it is left
out (as :func:`flowmonkey.kernel.apply.apply` and the projector do).

:func:`verify_all` reads each events partition once, folding every execution of the
partition as it goes, then compares that partition's executions with the projection
in chunks before moving on: memory holds one partition's states, never the log's.
"""

# Identifiers (the schema) cannot be bound parameters: they reach SQL only quoted by
# checked_schema; every value is a $n parameter.

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import asyncpg
import orjson

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.events.codec import decode_record, event_to_dict
from flowmonkey.events.envelope import Event
from flowmonkey.kernel.apply import apply, replay
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.kernel.state_codec import state_to_json
from flowmonkey.log.base import Log
from flowmonkey.log.partitioner import partition_for
from flowmonkey.model.form import ENTITY_PREFIX as FORM_PREFIX
from flowmonkey.model.trigger import ENTITY_PREFIX as TRIGGER_PREFIX
from flowmonkey.pg.schema import checked_schema

READ_BATCH = 5000
_ENTITY_PREFIXES = (TRIGGER_PREFIX, FORM_PREFIX)
COMPARE_CHUNK = 500
_TOP_UP_ROUNDS = 3
_MISSING: Any = object()

Kind = Literal["equal", "different", "missing"]


class NotInLogError(FlowMonkeyError):
    """The execution has no history in the events topic."""

    code = "EXECUTION_NOT_IN_LOG"


# --------------------------------------------------------------------------- history


@dataclass(slots=True)
class History:
    """One execution's events as the kernel folds them (seq order, each seq once)."""

    execution_id: str
    partition: int
    events: list[Event]
    ignored: int = 0
    """Records of this execution left out: redeliveries (seq at or below the last kept
    one), undecodable records, and seq-0 events (rejections, not history)."""

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    def upto(self, seq: int | None) -> list[Event]:
        return self.events if seq is None else [e for e in self.events if e.seq <= seq]

    def state_at(self, seq: int | None = None) -> ExecutionState | None:
        """The state right after event ``seq`` (the latest without one)."""
        return replay(self.events, upto_seq=seq)


async def read_history(log: Log, topic: str, execution_id: str, *,
                       partitions: int | None = None) -> History:
    """``execution_id``'s history from ``topic`` (the events topic), read up to the
    partition's end offset as of the call (a busy partition cannot keep it reading).
    Raises :class:`NotInLogError` when the log holds no event of it."""
    count = partitions if partitions is not None else await log.partitions_for(topic)
    key = execution_id.encode()
    partition = partition_for(key, count)
    end = await log.end_offset(topic, partition)
    history = History(execution_id, partition, [])
    offset = 0
    while offset < end:
        records = await log.read(topic, partition, offset, READ_BATCH)
        if not records:
            break  # only transaction markers or aborted records were left
        for record in records:
            if record.key != key or record.offset >= end:
                continue
            try:
                event = decode_record(record)
            except Exception:  # a bad record is no part of any history
                history.ignored += 1
                continue
            if event.execution_id != execution_id or event.seq <= history.last_seq:
                history.ignored += 1
                continue
            history.events.append(event)
        offset = records[-1].offset + 1
    if not history.events:
        raise NotInLogError(
            f"execution {execution_id!r} is not in the log ({topic}[{partition}] has no "
            f"event of it)", execution_id=execution_id, topic=topic, partition=partition)
    return history


def write_jsonl(events: Iterable[Event], out: IO[bytes]) -> int:
    """Write ``events`` as JSON lines of their envelope fields (the log's encoding);
    how many were written."""
    written = 0
    for event in events:
        out.write(orjson.dumps(event_to_dict(event)) + b"\n")
        written += 1
    return written


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True, slots=True)
class Difference:
    field: str
    """``state.<name>`` for a field of the stored state, else a column of the row."""
    projection: Any
    log: Any


@dataclass(frozen=True, slots=True)
class Verdict:
    execution_id: str
    kind: Kind
    log_seq: int
    projection_seq: int | None
    differences: tuple[Difference, ...] = ()

    @property
    def behind(self) -> bool:
        """The projection has not applied the log's latest events of it (yet)."""
        return self.projection_seq is not None and self.projection_seq < self.log_seq

    def to_json(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "result": self.kind,
                "log_seq": self.log_seq, "projection_seq": self.projection_seq,
                "differences": [{"field": d.field, "projection": d.projection, "log": d.log}
                                for d in self.differences]}


# the fm_executions columns the projector derives from the state, besides the state
_COLUMNS = ("tenant_id", "flow_id", "flow_version", "status", "parent_execution_id",
            "idempotency_key", "wake_at", "created_at", "updated_at", "seq")


def expected_columns(state: ExecutionState) -> dict[str, Any]:
    """The column values the projector writes for ``state``."""
    return {"tenant_id": state.tenant_id, "flow_id": state.flow_id,
            "flow_version": state.flow_version, "status": state.status.value,
            "parent_execution_id": state.parent_execution_id,
            "idempotency_key": state.idempotency_key, "wake_at": state.wake_at,
            "created_at": state.created_at, "updated_at": state.updated_at,
            "seq": state.seq}


def _same(a: Any, b: Any) -> bool:
    """JSON equality, numbers by value: jsonb may give back 1e100 as an integer."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        if isinstance(a, float) or isinstance(b, float):
            return math.isclose(float(a), float(b), rel_tol=1e-15, abs_tol=0.0)
        return a == b
    return type(a) is type(b) and bool(a == b)


def compare(execution_id: str, row: Mapping[str, Any] | None,
            state: ExecutionState) -> Verdict:
    """The projection's ``row`` (columns, and ``state`` as decoded JSON) against
    ``state`` replayed from the log."""
    if row is None or row.get("state") is None:
        return Verdict(execution_id, "missing", state.seq,
                       None if row is None else row.get("seq"))
    stored: dict[str, Any] = row["state"]
    encoded = orjson.dumps(state_to_json(state), option=orjson.OPT_SORT_KEYS)
    found: list[Difference] = []
    # The same JSON text (keys sorted at every level) is the same JSON, so every field
    # is _same; the field-by-field walk, several times dearer, is for the rest (numbers
    # jsonb wrote another way, and real differences).
    if encoded != orjson.dumps(stored, option=orjson.OPT_SORT_KEYS):
        expected: dict[str, Any] = orjson.loads(encoded)
        for name in sorted(stored.keys() | expected.keys()):
            mine, theirs = stored.get(name, _MISSING), expected.get(name, _MISSING)
            if mine is _MISSING or theirs is _MISSING or not _same(mine, theirs):
                found.append(Difference(f"state.{name}", None if mine is _MISSING else mine,
                                        None if theirs is _MISSING else theirs))
    for column, value in expected_columns(state).items():
        if row.get(column) != value:
            found.append(Difference(column, row.get(column), value))
    return Verdict(execution_id, "different" if found else "equal", state.seq,
                   row.get("seq"), tuple(found))


class ProjectionRows:
    """Reads ``fm_executions`` rows of a Postgres projection schema (not migrated or
    written: an audit reads only)."""

    def __init__(self, conn: asyncpg.Connection[asyncpg.Record], schema: str) -> None:
        self.conn = conn
        self.schema = schema
        quoted = checked_schema(schema)
        self._sql = (f"select id, {', '.join(_COLUMNS)}, state::text as state "  # noqa: S608
                     f"from {quoted}.fm_executions where id = any($1::text[])")

    async def check(self) -> None:
        """Raise a clear error when the schema has no projection tables."""
        found = await self.conn.fetchval(
            "select count(*) from information_schema.tables where table_schema = $1 "
            "and table_name = 'fm_executions'", self.schema)
        if not found:
            raise FlowMonkeyError(
                f'schema "{self.schema}" has no projection (no fm_executions table): '
                "check --schema", schema=self.schema)

    async def rows(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in await self.conn.fetch(self._sql, list(ids)):
            row = dict(r)
            if row["state"] is not None:
                row["state"] = orjson.loads(row["state"])
            out[r["id"]] = row
        return out


async def verify_execution(rows: ProjectionRows, log: Log, topic: str,
                           execution_id: str) -> tuple[Verdict, History]:
    """Compare the projection's ``execution_id`` with its state replayed from the log.

    The projection is read first: it is derived from the log, so the log read after
    it holds everything the projection applied (only a lagging projection shows as
    behind). Raises :class:`NotInLogError` when the log has no event of it."""
    row = (await rows.rows([execution_id])).get(execution_id)
    history = await read_history(log, topic, execution_id)
    state = history.state_at()
    if state is None:
        raise NotInLogError(f"execution {execution_id!r} has events in the log but no "
                            "execution.created event", execution_id=execution_id)
    return compare(execution_id, row, state), history


# --------------------------------------------------------------------------- verify-all


@dataclass(slots=True)
class VerifyReport:
    partitions: int = 0
    partitions_done: int = 0
    events_read: int = 0
    skipped_records: int = 0
    """Undecodable records (no execution's history; the projector skips them too)."""
    equal: int = 0
    different: int = 0
    missing: int = 0
    behind: int = 0
    """Of ``different``: the projection had not yet applied the log's latest events."""
    orphans: int = 0
    """Executions with events but no ``execution.created`` in the log (not compared)."""
    problems: list[Verdict] = field(default_factory=list)
    """The first ``keep_problems`` verdicts that were not equal."""

    @property
    def checked(self) -> int:
        return self.equal + self.different + self.missing

    @property
    def ok(self) -> bool:
        return self.different == 0 and self.missing == 0

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "equal": self.equal, "different": self.different,
                "missing": self.missing, "behind": self.behind, "orphans": self.orphans,
                "events_read": self.events_read, "skipped_records": self.skipped_records,
                "partitions": self.partitions,
                "problems": [v.to_json() for v in self.problems]}


class _PartitionFold:
    """Every execution of one partition folded from the log, in first-seen order."""

    def __init__(self, log: Log, topic: str, partition: int) -> None:
        self.log = log
        self.topic = topic
        self.partition = partition
        self.offset = 0
        self.states: dict[str, ExecutionState | None] = {}

    async def read_to(self, end: int, report: VerifyReport,
                      on_read: Callable[[], None] | None = None) -> None:
        while self.offset < end:
            records = await self.log.read(self.topic, self.partition, self.offset, READ_BATCH)
            if not records:
                return
            states = self.states
            for record in records:
                try:
                    event = decode_record(record)
                except Exception:
                    report.skipped_records += 1
                    continue
                report.events_read += 1
                if event.seq == 0 or event.execution_id.startswith(_ENTITY_PREFIXES):
                    continue  # a rejection, a trigger's or a form's event: no execution
                state = states.get(event.execution_id)
                new = apply(state, event)
                if new is not state or event.execution_id not in states:
                    states[event.execution_id] = new
            self.offset = records[-1].offset + 1
            if on_read is not None:
                on_read()


async def verify_all(rows: ProjectionRows, log: Log, topic: str, *,
                     limit: int | None = None, keep_problems: int = 20,
                     on_progress: Callable[[VerifyReport], None] | None = None
                     ) -> VerifyReport:
    """Compare every execution in the log (the first ``limit`` of them, partition by
    partition) with the projection. The log is read once, up to the end offsets taken
    at the start; a projection row found ahead of that (a projector ran meanwhile)
    makes its partition read on to the current end before it is compared again."""
    report = VerifyReport(partitions=await log.partitions_for(topic))
    ends = [await log.end_offset(topic, p) for p in range(report.partitions)]

    def progress() -> None:
        if on_progress is not None:
            on_progress(report)

    for partition in range(report.partitions):
        if limit is not None and report.checked >= limit:
            break
        fold = _PartitionFold(log, topic, partition)
        await fold.read_to(ends[partition], report, progress)
        ids: list[str] = []
        for execution_id, state in fold.states.items():
            if state is None:
                report.orphans += 1
            else:
                ids.append(execution_id)
        if limit is not None:
            ids = ids[:max(0, limit - report.checked)]
        for start in range(0, len(ids), COMPARE_CHUNK):
            await _compare_chunk(rows, fold, ids[start:start + COMPARE_CHUNK], report,
                                 keep_problems)
            progress()
        report.partitions_done += 1
        progress()
    return report


async def _compare_chunk(rows: ProjectionRows, fold: _PartitionFold, ids: Sequence[str],
                         report: VerifyReport, keep_problems: int) -> None:
    found = await rows.rows(ids)
    for _ in range(_TOP_UP_ROUNDS):
        ahead = [i for i in ids if i in found and (found[i]["seq"] or 0) > _seq(fold, i)]
        if not ahead:
            break
        # a projector applied events after our end offsets were taken: read on
        await fold.read_to(await fold.log.end_offset(fold.topic, fold.partition), report)
    for execution_id in ids:
        state = fold.states[execution_id]
        assert state is not None  # ids hold folded executions only
        verdict = compare(execution_id, found.get(execution_id), state)
        if verdict.kind == "equal":
            report.equal += 1
            continue
        if verdict.kind == "missing":
            report.missing += 1
        else:
            report.different += 1
            report.behind += verdict.behind
        if len(report.problems) < keep_problems:
            report.problems.append(verdict)


def _seq(fold: _PartitionFold, execution_id: str) -> int:
    state = fold.states.get(execution_id)
    return state.seq if state is not None else 0


class Throttle:
    """Calls ``emit`` at most every ``every_s`` seconds (progress lines)."""

    def __init__(self, every_s: float, emit: Callable[[VerifyReport], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.emit = emit
        self.clock = clock
        self._last = clock()

    def __call__(self, report: VerifyReport) -> None:
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            self.emit(report)
