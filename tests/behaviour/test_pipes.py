"""Pipes: a step's output is routed into a table; a row that cannot be written is kept
in the WAL with the reason and never affects the execution (FEATURES D3, D4)."""

from __future__ import annotations

from typing import Any

from flowmonkey import ColumnDef, Event, HandlerParams, Result, StepResult, TableDef, handler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step

ORDERS = TableDef(id="orders", columns=[
    ColumnDef(id="order_id", type="string", required=True),
    ColumnDef(id="total", type="number"),
    ColumnDef(id="source", type="string"),
])


@handler("checkout")
async def checkout(p: HandlerParams) -> StepResult:
    return Result.success(p.input)


@handler("decline")
async def decline(p: HandlerParams) -> StepResult:
    return Result.failure("DECLINED", "card declined")


def pipe(step_id: str = "pay", **extra: Any) -> dict[str, Any]:
    return {"id": f"p-{step_id}", "stepId": step_id, "tableId": "orders",
            "mappings": [{"sourcePath": "order.id", "columnId": "order_id"},
                         {"sourcePath": "order.total", "columnId": "total"}],
            "staticValues": {"source": "web"}, **extra}


def checkout_flow(*pipes: dict[str, Any]) -> dict[str, Any]:
    return flow("checkout", step("pay", "checkout", output_key="paid"), pipes=list(pipes))


async def test_a_pipe_writes_the_steps_output_into_its_table() -> None:
    async with TestHarness(handlers=[checkout], flows=[checkout_flow(pipe())],
                           tables=[ORDERS]) as t:
        r = await t.run("checkout", {"order": {"id": "o-1", "total": 12.5}})

        t.assert_completed(r.execution)
        assert t.table_rows("orders") == [{"order_id": "o-1", "total": 12.5, "source": "web"}]
        assert t.wal_entries() == []


async def test_pipe_and_row_events_reach_the_dispatcher() -> None:
    async with TestHarness(handlers=[checkout], flows=[checkout_flow(pipe())],
                           tables=[ORDERS]) as t:
        seen: list[Event] = []
        t.dispatcher.on("pipe.inserted", seen.append)
        t.dispatcher.on("row.inserted", seen.append)

        r = await t.run("checkout", {"order": {"id": "o-1", "total": 3}})

        assert [e.type for e in seen] == ["row.inserted", "pipe.inserted"]
        inserted = seen[1]
        assert inserted.execution_id == r.execution.id
        assert inserted.data["tableId"] == "orders"
        assert inserted.data["rowId"] == seen[0].data["rowId"]


async def test_a_bad_row_lands_in_the_wal_with_the_reason_and_the_execution_completes(
) -> None:
    async with TestHarness(handlers=[checkout], flows=[checkout_flow(pipe())],
                           tables=[ORDERS]) as t:
        r = await t.run("checkout", {"order": {"id": "o-2", "total": "not a number"}})

        t.assert_completed(r.execution)
        assert r.execution.context["paid"] == {"order": {"id": "o-2", "total": "not a number"}}
        assert t.table_rows("orders") == []
        [entry] = t.wal_entries()
        assert entry.table_id == "orders"
        assert entry.execution_id == r.execution.id
        assert entry.step_id == "pay"
        assert entry.data["total"] == "not a number"
        assert "total" in entry.error
        assert "number" in entry.error
        assert "pipe.failed" in [e.type for e in t.events]


async def test_a_row_missing_a_required_column_lands_in_the_wal() -> None:
    async with TestHarness(handlers=[checkout], flows=[checkout_flow(pipe())],
                           tables=[ORDERS]) as t:
        r = await t.run("checkout", {"order": {"total": 1}})

        t.assert_completed(r.execution)
        [entry] = t.wal_entries()
        assert "order_id" in entry.error
        assert "required" in entry.error


async def test_a_disabled_pipe_writes_nothing() -> None:
    async with TestHarness(handlers=[checkout], flows=[checkout_flow(pipe(enabled=False))],
                           tables=[ORDERS]) as t:
        r = await t.run("checkout", {"order": {"id": "o-3", "total": 1}})

        t.assert_completed(r.execution)
        assert t.table_rows("orders") == []


async def test_a_success_pipe_ignores_a_failed_step_and_an_on_failure_pipe_takes_it() -> None:
    f = flow("declined", step("pay", "decline"),
             pipes=[pipe(), {"id": "errors", "stepId": "pay", "tableId": "orders",
                             "on": "failure",
                             "mappings": [{"sourcePath": "error.code", "columnId": "order_id"}]}])
    async with TestHarness(handlers=[decline], flows=[f], tables=[ORDERS]) as t:
        r = await t.run("declined")

        t.assert_failed(r.execution, "DECLINED")
        assert t.table_rows("orders") == [{"order_id": "DECLINED"}]
