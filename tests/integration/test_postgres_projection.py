"""What only the Postgres projection promises: migrations, offsets stored atomically
with the batch, and answers identical to the memory projection's for the same log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.pg.schema import MIGRATIONS, migrate
from flowmonkey.projections.base import Projection, RowFilter, RowOrder, RowQuery
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.postgres import (
    OffsetConflictError,
    PostgresProjection,
    ProjectionStoreError,
)
from tests.contract.projection_contract import (
    ORDERS,
    T0,
    created,
    ev,
    full_run,
    pipe_row,
    started,
)
from tests.unit.kernel.support import DictEnv, KernelDriver, cancel_cmd, linear_flow

pytestmark = pytest.mark.integration

GROUP, TOPIC = "projector", "fm.events"


class _Clock:
    """Advances one millisecond per reading, so rows are ordered by insertion."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
async def postgres(pg_schema: tuple[str, str]) -> AsyncIterator[PostgresProjection]:
    dsn, schema = pg_schema
    projection = PostgresProjection(dsn, schema, pool_max=2, clock_ms=_Clock())
    await projection.start()
    yield projection
    await projection.close()


async def _count(pg_schema: tuple[str, str], table: str) -> int:
    dsn, schema = pg_schema
    conn = await asyncpg.connect(dsn)
    try:
        value: int = await conn.fetchval(f'select count(*) from "{schema}".{table}')
        return value
    finally:
        await conn.close()


# --------------------------------------------------------------------------- migrations


async def test_migrations_run_once_however_often_they_are_started(
    pg_schema: tuple[str, str],
) -> None:
    dsn, schema = pg_schema
    conn = await asyncpg.connect(dsn)
    try:
        first = await migrate(conn, schema)
        second = await migrate(conn, schema)
        recorded = await conn.fetchval(f'select count(*) from "{schema}".fm_schema_migrations')
    finally:
        await conn.close()
    assert first == [v for v, _, _ in MIGRATIONS]
    assert second == []
    assert recorded == len(MIGRATIONS)


async def test_concurrent_starters_apply_each_migration_exactly_once(
    pg_schema: tuple[str, str],
) -> None:
    dsn, schema = pg_schema
    conns = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(c, schema) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    assert sorted(applied) == [[], [], [v for v, _, _ in MIGRATIONS]]


def test_a_schema_name_that_is_not_a_plain_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresProjection("postgresql://unused", 'x"; drop table y; --')


# --------------------------------------------------------------------------- offsets


async def test_offsets_are_stored_with_the_batch(postgres: PostgresProjection) -> None:
    assert await postgres.committed_offset(GROUP, TOPIC, 0) is None
    await postgres.apply_events_with_offsets(full_run("e1"), GROUP, {(TOPIC, 0): 5,
                                                                     (TOPIC, 1): 0},
                                             since={(TOPIC, 0): 0, (TOPIC, 1): 0})
    assert await postgres.committed_offset(GROUP, TOPIC, 0) == 5
    assert await postgres.committed_offset(GROUP, TOPIC, 1) == 0
    assert await postgres.committed_offset("other-group", TOPIC, 0) is None
    execution = await postgres.get("e1")
    assert execution is not None
    assert execution.seq == 5


async def test_a_nul_character_in_event_data_is_stored_as_a_replacement_and_stops_nothing(
    postgres: PostgresProjection,
) -> None:
    # jsonb cannot hold U+0000: stored as-is, the batch (every execution in it) would
    # be refused again on every retry, and the projector would stop
    await postgres.apply_events_with_offsets(
        [created("e1", context={"note": "a\x00b", "lit\\u0000": "\\u0000"}),
         created("e2")], GROUP, {(TOPIC, 0): 2}, since={(TOPIC, 0): 0})
    await postgres.apply_events_with_offsets(started("e1"), GROUP, {(TOPIC, 0): 4},
                                             since={(TOPIC, 0): 2})
    execution = await postgres.get("e1")
    assert execution is not None
    assert execution.seq == 3
    # a backslash followed by "u0000" is text, not the escape, and stays as it was
    assert execution.context == {"note": "a\ufffdb", "lit\\u0000": "\\u0000"}
    [first, *_] = await postgres.history("e1")
    assert first.data["context"] == {"note": "a\ufffdb", "lit\\u0000": "\\u0000"}
    assert await postgres.get("e2") is not None
    assert await postgres.committed_offset(GROUP, TOPIC, 0) == 4


async def test_commands_with_a_nul_in_their_ids_are_refused_and_projected(
    postgres: PostgresProjection,
) -> None:
    # the kernel refuses them, but the refusal (and, for a command id, the events of a
    # command it does not refuse) carries the ids: stored as they are, text refuses NUL
    # and the projector would stop on this batch, on every retry
    d = KernelDriver(DictEnv([linear_flow("lin", 1)]))
    d.start("ok", "lin")
    bad_start = d.start("e\x001", "lin", tenant_id="ac\x00me", command_id="c\x00md")
    bad_cancel = d.send(cancel_cmd("ok", at=T0 + 1, command_id="can\x00cel"))
    for decision, name in ((bad_start, "command id"), (bad_cancel, "command id")):
        assert decision.rejected is not None
        assert decision.rejected.data["reason"] == f"the {name} contains a NUL character " \
            "(U+0000)"

    await postgres.apply_events_with_offsets(d.events, GROUP, {(TOPIC, 0): len(d.events)},
                                             since={(TOPIC, 0): 0})

    assert await postgres.committed_offset(GROUP, TOPIC, 0) == len(d.events)
    execution = await postgres.get("ok")
    assert execution is not None
    assert execution.seq == d.partition.executions["ok"].seq


async def test_a_failed_batch_leaves_neither_its_rows_nor_its_offsets(
    postgres: PostgresProjection, pg_schema: tuple[str, str]
) -> None:
    await postgres.create_table(ORDERS)
    await postgres.apply_events_with_offsets([created("e1")], GROUP, {(TOPIC, 0): 1},
                                             since={(TOPIC, 0): 0})
    # given a batch whose last event Postgres cannot store (text refuses NUL; the
    # kernel refuses it in the ids it stores, so only a foreign producer gets it there)
    bad = ev(n.STEP_COMPLETED, "e2", 2, {"step_id": "s", "outcome": "success"},
             tenant="nul \u0000 byte")
    batch = [*started("e1"), pipe_row("e1", 4, {"sku": "a"}), created("e2"), bad]
    # when it is applied with its offsets
    with pytest.raises(ProjectionStoreError, match="batch of 5 events"):
        await postgres.apply_events_with_offsets(batch, GROUP, {(TOPIC, 0): 6},
                                                 since={(TOPIC, 0): 1})
    # then nothing of it landed: not the executions, the rows, nor the offset
    assert await postgres.committed_offset(GROUP, TOPIC, 0) == 1
    execution = await postgres.get("e1")
    assert execution is not None
    assert execution.seq == 1
    assert await postgres.get("e2") is None
    assert (await postgres.query_rows(RowQuery(table_id="orders"))).total == 0
    assert await _count(pg_schema, "fm_events") == 1


async def test_a_redelivered_batch_changes_nothing(
    postgres: PostgresProjection, pg_schema: tuple[str, str]
) -> None:
    await postgres.create_table(ORDERS)
    batch = [*full_run("e1", tenant="acme"), pipe_row("e1", 6, {"sku": "a"}, tenant="acme"),
             pipe_row("e1", 7, {"qty": 1}, tenant="acme"), *_waiting_with_token("w1")]
    await postgres.apply_events_with_offsets(batch, GROUP, {(TOPIC, 0): len(batch)},
                                             since={(TOPIC, 0): 0})
    before = await _snapshot(postgres, ["e1", "w1"])
    counts = [await _count(pg_schema, t) for t in ("fm_events", "fm_resume_tokens")]
    await postgres.apply_events_with_offsets(batch, GROUP, {(TOPIC, 0): len(batch)},
                                             since={(TOPIC, 0): 0})
    assert await _snapshot(postgres, ["e1", "w1"]) == before
    assert [await _count(pg_schema, t) for t in ("fm_events", "fm_resume_tokens")] == counts
    assert await postgres.committed_offset(GROUP, TOPIC, 0) == len(batch)


async def test_tokens_cleaned_marks_the_tokens_expired(
    postgres: PostgresProjection, pg_schema: tuple[str, str]
) -> None:
    batch = [*_waiting_with_token("w1"),
             ev(n.TOKENS_CLEANED, "w1", 5, {"tokens": ["w1-t1"], "count": 1}, tenant="acme")]
    await postgres.apply_events(batch)
    dsn, schema = pg_schema
    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.fetchval(
            f'select status from "{schema}".fm_resume_tokens where token = $1', "w1-t1")
    finally:
        await conn.close()
    assert status == "expired"
    execution = await postgres.get("w1")
    assert execution is not None
    assert execution.resume_token is None


async def _set_offset(pg_schema: tuple[str, str], partition: int, offset: int | None) -> None:
    """Change the stored offset behind the projection's back (None: delete it)."""
    dsn, schema = pg_schema
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'delete from "{schema}".fm_projection_offsets '
                           "where group_id = $1 and topic = $2 and partition = $3",
                           GROUP, TOPIC, partition)
        if offset is not None:
            await conn.execute(f'insert into "{schema}".fm_projection_offsets '
                               "values ($1, $2, $3, $4)", GROUP, TOPIC, partition, offset)
    finally:
        await conn.close()


async def test_a_batch_continuing_from_an_offset_the_store_lost_is_refused_whole(
    postgres: PostgresProjection, pg_schema: tuple[str, str]
) -> None:
    await postgres.create_table(ORDERS)
    await postgres.apply_events_with_offsets([created("e1")], GROUP, {(TOPIC, 0): 1},
                                             since={(TOPIC, 0): 0})
    await postgres.apply_events_with_offsets(started("e1"), GROUP, {(TOPIC, 0): 3},
                                             since={(TOPIC, 0): 1})
    # given the store lost the last commit (as a crash with synchronous_commit off can)
    await _set_offset(pg_schema, 0, 1)
    # when the next batch continues from the offset the projector wrote last
    batch = [pipe_row("e1", 4, {"sku": "a"}), created("e2")]
    with pytest.raises(OffsetConflictError, match=r"fm\.events\[0\] stored 1 < 3") as caught:
        await postgres.apply_events_with_offsets(batch, GROUP, {(TOPIC, 0): 5},
                                                 since={(TOPIC, 0): 3})
    # then it is refused whole, saying what is stored, and nothing of it landed
    assert caught.value.stored == {(TOPIC, 0): 1}
    assert caught.value.code == "PROJECTION_OFFSET_CONFLICT"
    assert await postgres.committed_offset(GROUP, TOPIC, 0) == 1
    assert await postgres.get("e2") is None
    assert (await postgres.query_rows(RowQuery(table_id="orders"))).total == 0


async def test_a_batch_from_past_zero_is_refused_where_no_offset_is_stored(
    postgres: PostgresProjection, pg_schema: tuple[str, str]
) -> None:
    await postgres.apply_events_with_offsets([created("e1")], GROUP, {(TOPIC, 0): 1},
                                             since={(TOPIC, 0): 0})
    await _set_offset(pg_schema, 0, None)  # the first commit was lost
    with pytest.raises(OffsetConflictError) as caught:
        await postgres.apply_events_with_offsets(started("e1"), GROUP, {(TOPIC, 0): 3},
                                                 since={(TOPIC, 0): 1})
    assert caught.value.stored == {(TOPIC, 0): None}
    assert await postgres.committed_offset(GROUP, TOPIC, 0) is None
    assert await _count(pg_schema, "fm_events") == 1


async def test_one_lost_partition_refuses_the_batch_of_every_partition(
    postgres: PostgresProjection, pg_schema: tuple[str, str]
) -> None:
    await postgres.apply_events_with_offsets(
        [created("e1"), created("e2")], GROUP, {(TOPIC, 0): 1, (TOPIC, 1): 1},
        since={(TOPIC, 0): 0, (TOPIC, 1): 0})
    await _set_offset(pg_schema, 1, 0)
    with pytest.raises(OffsetConflictError):
        await postgres.apply_events_with_offsets(
            [*started("e1"), *started("e2")], GROUP, {(TOPIC, 0): 3, (TOPIC, 1): 3},
            since={(TOPIC, 0): 1, (TOPIC, 1): 1})
    assert await postgres.committed_offset(GROUP, TOPIC, 0) == 1
    assert await _count(pg_schema, "fm_events") == 2


async def test_a_stored_offset_ahead_of_the_batch_is_kept_and_the_batch_applies(
    postgres: PostgresProjection, pg_schema: tuple[str, str]
) -> None:
    # another projector of the group (an engine's and `flowmonkey projector`) is ahead:
    # every event below its offset is stored, the batch is the same events again
    await postgres.apply_events_with_offsets(full_run("e1"), GROUP, {(TOPIC, 0): 5},
                                             since={(TOPIC, 0): 0})
    await postgres.apply_events_with_offsets(started("e1"), GROUP, {(TOPIC, 0): 3},
                                             since={(TOPIC, 0): 1})
    assert await postgres.committed_offset(GROUP, TOPIC, 0) == 5
    execution = await postgres.get("e1")
    assert execution is not None
    assert execution.seq == 5


async def test_offsets_without_the_offsets_they_continue_from_are_refused(
    postgres: PostgresProjection,
) -> None:
    with pytest.raises(ValueError, match="since"):
        await postgres.apply_events_with_offsets([created("e1")], GROUP, {(TOPIC, 0): 1},
                                                 since={})


# --------------------------------------------------------------------------- parity with memory


def _waiting_with_token(eid: str, ts: int = T0) -> list[Event]:
    return [
        created(eid, ts, tenant="acme"),
        ev(n.EXECUTION_STARTED, eid, 2, {"step_id": "approve"}, tenant="acme"),
        ev(n.EXECUTION_WAITING, eid, 3, {"kind": "signal", "reason": "approval"},
           tenant="acme"),
        ev(n.TOKEN_CREATED, eid, 4, {"token": f"{eid}-t1", "expires_at": T0 + 10_000},
           tenant="acme"),
    ]


def _rich_log() -> list[Event]:
    """Executions that exercise most appliers: history recording, retries, waits and
    tokens, children, failure, cancellation, pipes and a rejection."""
    h = "h1"
    recorded = [
        ev(n.EXECUTION_CREATED, h, 1, {
            "flow_id": "orders", "flow_version": "2", "context": {"order": {"id": 7}},
            "options": {"record_history": True, "max_steps": 50,
                        "limits": {"max_keys": 20}},
            "timeout": {"execution_timeout_ms": 60_000}, "metadata": {"via": "api"},
            "idempotency_key": "k-1", "idempotency_expires_at": T0 + 99},
           ts=T0 + 3),
        ev(n.EXECUTION_STARTED, h, 2, {"step_id": "charge"}),
        ev(n.STEP_STARTED, h, 3, {"step_id": "charge", "attempt": 1, "attempt_id": "h1:3",
                                  "input": {"amount": 2.5}}),
        ev(n.STEP_RETRY, h, 4, {"step_id": "charge", "attempt": 2}),
        ev(n.STEP_STARTED, h, 5, {"step_id": "charge", "attempt": 2, "attempt_id": "h1:5"}),
        ev(n.STEP_COMPLETED, h, 6, {"step_id": "charge", "outcome": "success",
                                    "output_key": "charge", "output": [1, "x", None],
                                    "step_type": "http", "duration_ms": 4}),
        ev(n.TRANSITION, h, 7, {"from_step_id": "charge", "to_step_id": "approve"}),
        ev(n.EXECUTION_WAITING, h, 8, {"kind": "time", "wake_at": T0 + 500,
                                       "reason": "cool-off"}),
        ev(n.TOKEN_CREATED, h, 9, {"token": "h1-t1", "expires_at": T0 + 1_000}),
        ev(n.TOKEN_USED, h, 10, {"token": "h1-t1"}),
        ev(n.EXECUTION_RESUMED, h, 11, {"output_key": "approval", "data": {"ok": True}}),
        ev(n.CHILD_STARTED, h, 12, {"child_execution_id": "c1"}),
        pipe_row(h, 13, {"sku": "h", "qty": 3, "at": "2023-11-14T22:13:20Z"}),
        ev(n.CHILD_FINISHED, h, 14, {"child_execution_id": "c1", "status": "failed"}),
        ev(n.EXECUTION_FAILED, h, 15, {"code": "CHILD_FAILED", "message": "c1 failed",
                                       "step_id": "approve", "details": {"child": "c1"}}),
    ]
    child = [created("c1", T0 + 4, parent=h),
             ev(n.EXECUTION_CANCELLING, "c1", 2, {"source": "parent"}),
             ev(n.EXECUTION_CANCELLED, "c1", 3, {"source": "parent", "reason": "stop"})]
    rejection = ev(n.COMMAND_REJECTED, "h1", 0, {"code": n.REJECT_NOT_WAITING})
    orphan = [ev(n.STEP_STARTED, "orphan", 2, {"step_id": "x", "attempt": 1,
                                               "attempt_id": "o"})]
    return [*full_run("e1", T0, tenant="acme"), *_waiting_with_token("w1", T0 + 1),
            pipe_row("e1", 6, {"sku": 5}, tenant="acme"), *recorded, *child, rejection,
            *orphan, *full_run("e2", T0 + 3, tenant="globex", flow="refunds")]


async def _snapshot(projection: Projection, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for eid in ids:
        execution = await projection.get(eid)
        history = await projection.history(eid)
        out[eid] = {
            "get": execution,
            "history": history,
            "state_at": [await projection.state_at(eid, e.seq) for e in history],
        }
    listings: list[dict[str, Any]] = [
        {}, {"tenant_id": "acme"}, {"status": "failed"}, {"flow_id": "refunds"},
        {"parent_execution_id": "h1"}, {"limit": 2}]
    out["lists"] = [[e.id for e in (await projection.list(**kw)).items] for kw in listings]
    if await projection.get_table("orders") is not None:
        rows = await projection.query_rows(RowQuery(table_id="orders"))
        out["rows"] = [(r.id, r.tenant_id, r.data) for r in rows.rows]
    out["wal"] = [(w.id, w.data, w.error, w.status) for w in await projection.wal_pending()]
    return out


@pytest.mark.parametrize("batch_size", [1, 4, 1_000])
async def test_a_projection_built_from_a_log_answers_like_the_memory_projection(
    postgres: PostgresProjection, batch_size: int
) -> None:
    log = _rich_log()
    memory = MemoryProjection()
    for projection in (memory, postgres):
        await projection.create_table(ORDERS)
        for i in range(0, len(log), batch_size):
            await projection.apply_events(log[i:i + batch_size])
    ids = ["e1", "w1", "h1", "c1", "e2", "orphan", "unknown"]
    assert await _snapshot(postgres, ids) == await _snapshot(memory, ids)
    h1 = await postgres.get("h1")
    assert h1 is not None
    assert len(h1.history) == 1  # the recorded step survived the stored state


# --------------------------------------------------------------------------- row queries


MIXED = TableDef(id="mixed", columns=[ColumnDef(id="name"), ColumnDef(id="v", type="json")])
MIXED_ROWS: list[dict[str, Any]] = [
    {"name": "Zed", "v": 2}, {"name": "apple", "v": 10.5}, {"name": "a_b", "v": "b"},
    {"name": "a%b", "v": "B"}, {"name": "back\\slash", "v": True}, {"name": "é", "v": False},
    {"name": "none", "v": None}, {"name": "missing"}, {"name": "list", "v": [1, 2]},
    {"name": "obj", "v": {"k": 1}}, {"name": "int-float", "v": 2.0},
]


@pytest.fixture
async def both(postgres: PostgresProjection) -> list[Projection]:
    memory = MemoryProjection(clock_ms=_Clock())
    for projection in (memory, postgres):
        await projection.create_table(MIXED)
        for row in MIXED_ROWS:
            await projection.insert_row("mixed", row)
    return [memory, postgres]


@pytest.mark.parametrize(("column", "op", "value"), [
    ("v", "eq", 2), ("v", "eq", True), ("v", "neq", 2), ("v", "eq", None),
    ("v", "neq", None), ("v", "in", [2, "b", None]), ("v", "gt", 1), ("v", "lt", "b"),
    ("v", "gte", False), ("v", "gt", None), ("v", "lt", {"k": 2}), ("v", "like", "%"),
    ("name", "like", "a\\_b"), ("name", "like", "a\\%b"), ("name", "like", "back\\\\%"),
    ("name", "like", "back\\"), ("name", "like", "_"), ("name", "gt", "Z"),
    ("name", "like", "A%"),
])
async def test_row_filters_select_what_the_memory_projection_selects(
    both: list[Projection], column: str, op: Any, value: Any
) -> None:
    query = RowQuery(table_id="mixed", filters=[RowFilter(column=column, op=op, value=value)])
    memory, postgres = [await p.query_rows(query) for p in both]
    assert {r.data["name"] for r in postgres.rows} == {r.data["name"] for r in memory.rows}
    assert postgres.total == memory.total


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_mixed_json_values_order_like_the_memory_projection(
    both: list[Projection], direction: Any
) -> None:
    # objects and arrays are left out: their relative order is backend-specific
    query = RowQuery(table_id="mixed", order_by=RowOrder(column="v", direction=direction),
                     filters=[RowFilter(column="name", op="in", value=[
                         r["name"] for r in MIXED_ROWS if r["name"] not in ("list", "obj")])])
    memory, postgres = [await p.query_rows(query) for p in both]
    assert [r.data["name"] for r in postgres.rows] == [r.data["name"] for r in memory.rows]


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_strings_order_by_code_point_like_the_memory_projection(
    both: list[Projection], direction: Any
) -> None:
    query = RowQuery(table_id="mixed", order_by=RowOrder(column="name", direction=direction))
    memory, postgres = [await p.query_rows(query) for p in both]
    assert [r.data["name"] for r in postgres.rows] == [r.data["name"] for r in memory.rows]


async def test_a_state_written_by_another_projector_is_read_not_taken_from_the_cache(
        pg_schema: tuple[str, str]) -> None:
    from flowmonkey.kernel.apply import replay

    dsn, schema = pg_schema
    first = PostgresProjection(dsn, schema, pool_max=2)
    second = PostgresProjection(dsn, schema, pool_max=2)
    await first.start()
    await second.start()
    try:
        run = full_run("e-shared")  # seqs 1-5
        # the first projector writes seqs 1-2 (and keeps that state decoded), the other
        # one writes 3-4 behind its back, then the first one gets seq 5
        await first.apply_events(run[:2])
        await second.apply_events(run[2:4])
        await first.apply_events(run[4:])
        expected = replay(run)
        assert expected is not None
        for projection in (first, second):
            assert await projection.get("e-shared") == expected.to_execution()
    finally:
        await first.close()
        await second.close()


async def test_a_pooled_connection_comes_back_in_its_schema_and_outside_any_transaction(
        pg_schema: tuple[str, str]) -> None:
    # The pool skips asyncpg's RESET ALL on release (a round trip per acquire); what a
    # connection must still be when it comes back: in the projection's schema, with a
    # transaction left open by a failed caller rolled back, and its settings undone.
    dsn, schema = pg_schema
    projection = PostgresProjection(dsn, schema, pool_max=1)
    await projection.start()
    try:
        pool = projection._pool
        async with pool.acquire() as conn:
            await conn.execute("begin")
            await conn.execute("set local statement_timeout = 1234")
            await conn.execute("create temporary table fm_left_behind (x int) "
                               "on commit drop")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("show statement_timeout") == "0"
            assert await conn.fetchval("show search_path") == f'"{schema}"'
            assert await conn.fetchval(
                "select count(*) from pg_class where relname = 'fm_left_behind'") == 0
    finally:
        await projection.close()
