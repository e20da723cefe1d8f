"""Data store: tables, pipes and the write-ahead log (WAL) of failed rows.

A *pipe* copies values from a step's output into a table row whenever the step
succeeds (``on: "success"``, the default), fails (``"failure"``, the output is then
``{"error": {...}}``) or either (``"any"``), plus ``staticValues``. Pipes never
affect the execution. A row that does not fit its table (a missing required column,
a wrong type) lands in the WAL with the reason, where it can be replayed, acked and
compacted. Rows can be queried with filters, order, limit and offset.

Run: python examples/11_pipes_and_wal.py
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from flowmonkey import ColumnDef, HandlerParams, Result, StepResult, TableDef, handler
from flowmonkey.projections import RowFilter, RowOrder, RowQuery
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("checkout")
async def checkout(params: HandlerParams) -> StepResult:
    order = params.input
    if order.get("card") == "declined":
        return Result.failure("CARD_DECLINED", "the card was declined",
                              details={"orderId": order["id"]})
    return Result.success({"orderId": order["id"], "total": order.get("total")})


ORDERS = TableDef(id="orders", columns=[
    ColumnDef(id="order_id", type="string", required=True),
    ColumnDef(id="total", type="number", required=True),
    ColumnDef(id="channel", type="string"),
])
DECLINES = TableDef(id="declines", columns=[
    ColumnDef(id="code", type="string", required=True),
    ColumnDef(id="order_id", type="string"),
])

FLOW = {
    "id": "shop", "version": "1.0.0", "initialStepId": "checkout",
    "steps": {"checkout": {"id": "checkout", "type": "checkout",
                           "input": {"type": "key", "key": "order"}, "outputKey": "receipt",
                           "transitions": {"onSuccess": None, "onFailure": None}}},
    "pipes": [
        {"id": "paid", "stepId": "checkout", "tableId": "orders",
         "mappings": [{"sourcePath": "orderId", "columnId": "order_id"},
                      {"sourcePath": "total", "columnId": "total"}],
         "staticValues": {"channel": "web"}},
        {"id": "declined", "stepId": "checkout", "on": "failure", "tableId": "declines",
         "mappings": [{"sourcePath": "error.code", "columnId": "code"},
                      {"sourcePath": "error.details.orderId", "columnId": "order_id"}]},
    ],
}


async def main() -> None:
    async with TestHarness(handlers=[checkout], flows=[FLOW], tables=[ORDERS, DECLINES]) as t:
        orders: list[dict[str, Any]] = [{"id": "A-1", "total": 10.5}, {"id": "A-2", "total": 99},
                  {"id": "A-3"}, {"id": "A-4", "total": 5, "card": "declined"}]
        for order in orders:
            r = await t.run("shop", {"order": order})
            print(f"order {order['id']}: execution {r.execution.status.value}")
        print(f"orders rows:   {t.table_rows('orders')}")
        print(f"declines rows: {t.table_rows('declines')}")
        check(len(t.table_rows("orders")) == 2, "two orders landed")
        check(t.table_rows("declines") == [{"code": "CARD_DECLINED", "order_id": "A-4"}],
              "the failure pipe wrote the decline")

        wal = t.wal_entries()
        for entry in wal:
            print(f"WAL: {entry.table_id} {entry.data} -> {entry.error}")
        check(len(wal) == 1 and "total" in wal[0].error, "A-3 (no total) is in the WAL")

        projection = t.projection
        result = await projection.wal_replay()
        print(f"replay without a fix: replayed={result.replayed} failed={result.failed}")
        check(result.failed == 1, "replay fails again until the data is fixed")
        # an operator fixes the row by hand, then acks and compacts the entry
        await projection.insert_row("orders", {**wal[0].data, "total": 0})
        await projection.wal_ack(wal[0].id)
        removed = await projection.wal_compact()
        print(f"fixed by hand, acked, compacted {removed}; pending: "
              f"{len(await projection.wal_pending())}")
        check(removed == 1 and not await projection.wal_pending(), "WAL empty")

        page = await projection.query_rows(RowQuery(
            table_id="orders", filters=[RowFilter(column="total", op="gte", value=10)],
            order_by=RowOrder(column="total", direction="desc")))
        print(f"orders with total >= 10: {[r.data['order_id'] for r in page.rows]} "
              f"(total {page.total})")
        check([r.data["order_id"] for r in page.rows] == ["A-2", "A-1"], "query")
    print("pipes and WAL OK")


if __name__ == "__main__":
    asyncio.run(main())
