"""``flowmonkey demo``: a built-in order-processing flow, end to end, in about a second.

validate order -> conditional route -> charge (fails once, retried) -> wait 2 s
(simulated) -> wait for the courier's signal (the demo resumes it) -> ship, with
pipes writing a row per milestone into a table. No network, no services.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import EXIT_FAILED, EXIT_OK
from flowmonkey.cli.explorer import (
    DEFAULT_UI_PORT,
    UI_HOST,
    add_ui_options,
    check_ui_port,
    serve_explorer,
)
from flowmonkey.cli.format import (
    format_timeline,
    short,
)
from flowmonkey.cli.options import add_command

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.events.envelope import Event
    from flowmonkey.handlers.base import HandlerParams, StepHandler
    from flowmonkey.model.execution import Execution
    from flowmonkey.model.result import StepResult
    from flowmonkey.testing import TestHarness

DEMO_EPILOG = """\
The demo runs on the embedded log (in memory) with a simulated clock, so the 2 s wait
and the retry backoff take no wall-clock time. It checks that every stage happened
and prints "demo OK" (exit 0), or what went wrong (exit 1).

With --ui it then serves the explorer on the demo's data (http://127.0.0.1:8080/ui,
local only, no login) until Ctrl-C, with a second order left waiting for the courier
so you can resume it from the page.

examples:
  flowmonkey demo
  flowmonkey demo --ui
"""

DEMO_FLOW: dict[str, Any] = {
    "id": "order-demo",
    "version": "1.0.0",
    "name": "Order processing (demo)",
    "initialStepId": "validate",
    "steps": {
        "validate": {
            "id": "validate", "type": "validate-order",
            "input": {"type": "key", "key": "order"}, "outputKey": "validation",
            "transitions": {"onSuccess": "route", "onFailure": None},
        },
        "route": {
            "id": "route", "type": "conditional",
            "config": {
                "conditions": [{"path": "total", "op": "gte", "value": 1000,
                                "target": "manual-review"}],
                "default": "charge",
            },
            "input": {"type": "key", "key": "validation"},
            "transitions": {"onSuccess": "charge"},
        },
        "manual-review": {
            "id": "manual-review", "type": "transform",
            "config": {"expression": "'large order: needs a human'"},
            "outputKey": "review", "transitions": {"onSuccess": None},
        },
        "charge": {
            "id": "charge", "type": "charge-payment",
            "input": {"type": "key", "key": "validation"}, "outputKey": "payment",
            "retry": {"maxAttempts": 2, "backoffMs": 500, "retryOn": ["TRANSIENT"]},
            "transitions": {"onSuccess": "cool-off", "onFailure": None},
        },
        "cool-off": {
            "id": "cool-off", "type": "delay", "config": {"seconds": 2},
            "transitions": {"onSuccess": "courier"},
        },
        "courier": {
            "id": "courier", "type": "await-courier", "outputKey": "pickup",
            "transitions": {"onSuccess": "ship"},
        },
        "ship": {
            "id": "ship", "type": "transform",
            "config": {"expression": "{'orderId': context.validation.orderId, "
                                     "'courier': context.pickup.courier, "
                                     "'tracking': context.pickup.tracking, "
                                     "'total': context.validation.total}"},
            "outputKey": "shipment", "transitions": {"onSuccess": None},
        },
    },
    "pipes": [
        {"id": "log-validated", "stepId": "validate", "on": "success", "tableId": "order_log",
         "mappings": [{"sourcePath": "orderId", "columnId": "order_id"},
                      {"sourcePath": "total", "columnId": "amount"}],
         "staticValues": {"stage": "validated"}},
        {"id": "log-charged", "stepId": "charge", "on": "success", "tableId": "order_log",
         "mappings": [{"sourcePath": "orderId", "columnId": "order_id"},
                      {"sourcePath": "amount", "columnId": "amount"}],
         "staticValues": {"stage": "charged"}},
        {"id": "log-shipped", "stepId": "ship", "on": "success", "tableId": "order_log",
         "mappings": [{"sourcePath": "result.orderId", "columnId": "order_id"},
                      {"sourcePath": "result.total", "columnId": "amount"}],
         "staticValues": {"stage": "shipped"}},
    ],
}

DEMO_TABLE: dict[str, Any] = {
    "id": "order_log", "name": "Order log",
    "columns": [
        {"id": "order_id", "type": "string", "required": True},
        {"id": "stage", "type": "string", "required": True},
        {"id": "amount", "type": "number"},
    ],
}

DEMO_ORDER: dict[str, Any] = {
    "id": "A-1001", "customer": "ada@example.com",
    "items": [{"sku": "BANANA", "qty": 6, "price": 0.5},
              {"sku": "MONKEY-WRENCH", "qty": 1, "price": 129.0},
              {"sku": "ROPE-10M", "qty": 2, "price": 8.25}],
}

PICKUP: dict[str, Any] = {"courier": "FlyingMonkey Express", "tracking": "FM-000042"}


def register_demo(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "demo", help="run the built-in order-processing demo",
                    description="Run a built-in order-processing flow end to end and check "
                                "that every stage happened.",
                    epilog=DEMO_EPILOG)
    add_ui_options(p, what="the demo's data")
    p.set_defaults(func=cmd_demo)


def demo_handlers() -> list[StepHandler]:
    from flowmonkey import Result, handler

    @handler("validate-order", description="Check an order and compute its total.")
    async def validate_order(params: HandlerParams) -> StepResult:
        order = params.input if isinstance(params.input, dict) else {}
        items = order.get("items") or []
        if not order.get("id") or not items:
            return Result.failure("INVALID_ORDER", "an order needs an id and items")
        total = round(sum(float(i["qty"]) * float(i["price"]) for i in items), 2)
        return Result.success({"orderId": order["id"], "total": total,
                               "itemCount": len(items)})

    @handler("charge-payment", description="Charge the order; the gateway fails once.")
    async def charge_payment(params: HandlerParams) -> StepResult:
        if params.attempt == 1:
            return Result.failure("TRANSIENT", "payment gateway timed out")
        return Result.success({"orderId": params.input["orderId"],
                               "amount": params.input["total"],
                               "chargeId": f"ch_{params.input['orderId']}",
                               "attempt": params.attempt})

    @handler("await-courier", description="Wait until the courier confirms pickup.")
    async def await_courier(params: HandlerParams) -> StepResult:
        return Result.wait_for_signal("courier pickup")

    return [validate_order, charge_payment, await_courier]


def cmd_demo(args: argparse.Namespace) -> int:
    check_ui_port(args.ui_port)
    return asyncio.run(_demo(ui_port=args.ui_port if args.ui else None))


async def _demo(ui_port: int | None = None) -> int:
    from flowmonkey.model.tables import TableDef
    from flowmonkey.testing import TestHarness

    wall = time.perf_counter()
    print("FlowMonkey demo: order processing on the embedded log (in memory), "
          "simulated clock")
    print("flow order-demo: validate -> route -> charge (retried) -> wait 2 s -> "
          "courier signal -> ship; pipes -> table order_log")
    print()
    harness = TestHarness(handlers=demo_handlers(), flows=[DEMO_FLOW],
                          tables=[TableDef.model_validate(DEMO_TABLE)])
    async with harness:
        print(f"start: order {DEMO_ORDER['id']} with {len(DEMO_ORDER['items'])} items")
        first = await harness.run("order-demo", {"order": DEMO_ORDER})
        execution = first.execution
        print(f"execution {execution.id} is {execution.status.value} at step "
              f"{execution.current_step_id!r} ({execution.wait_reason})")
        token = execution.resume_token
        if token is not None:
            print(f"the demo plays the courier: resume with token {token[:8]}... and "
                  f"{PICKUP}")
            execution = await harness.resume(execution.id, token, PICKUP)
        events = harness.events_for(execution.id)
        rows = harness.table_rows("order_log")
        wal = harness.wal_entries()
        ok = _report(execution, events, rows, len(wal), wall)
        if ui_port is None:
            print()
            print("See it in the explorer (graph, timeline, time travel): make demo-ui "
                  f"(or flowmonkey demo --ui), then open http://{UI_HOST}:{DEFAULT_UI_PORT}/ui")
        else:
            await _explore(harness, ui_port)
    return EXIT_OK if ok else EXIT_FAILED


async def _explore(harness: TestHarness, port: int) -> None:
    """Serve the explorer on the demo's engine, with a second order left waiting for
    the courier, until Ctrl-C."""
    from flowmonkey.cli.service import stop_on_signals

    second = {**DEMO_ORDER, "id": "A-1002"}
    waiting = (await harness.run("order-demo", {"order": second})).execution
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with serve_explorer(harness.engine, port) as url:
        print()
        print(f"explorer: {url} (local only, no login; Ctrl-C to stop)")
        print(f"  order A-1002 waits for the courier: {url}/executions/{waiting.id}")
        print("  resume it from the page (its token is filled in), or open the completed "
              "order A-1001 and move the time-travel slider")
        await stop.wait()


def _report(execution: Execution, events: list[Event], rows: list[dict[str, Any]],
            wal: int, wall: float) -> bool:
    print()
    print("timeline:")
    for line in format_timeline(execution.id, [e for e in events if e.seq > 0]):
        print(line)
    print()
    print(f"status:  {execution.status.value}")
    print("context:")
    for key, value in execution.context.items():
        print(f"  {key}: {short(value, 100)}")
    print()
    print(f"table order_log ({len(rows)} rows):")
    print(f"  {'order_id':<10} {'stage':<10} amount")
    for row in rows:
        print(f"  {row.get('order_id')!s:<10} {row.get('stage')!s:<10} {row.get('amount')}")
    print()
    checks = _checks(execution.status.value, execution.context, events, rows, wal)
    print("checks:")
    for ok, text in checks:
        print(f"  [{'ok' if ok else 'FAILED'}] {text}")
    simulated = (events[-1].timestamp_ms - events[0].timestamp_ms) / 1000 if events else 0
    took = time.perf_counter() - wall
    if all(ok for ok, _ in checks):
        print(f"demo OK ({took:.2f} s wall, {simulated:.1f} s simulated)")
        return True
    print(f"demo FAILED ({sum(not ok for ok, _ in checks)} checks failed)")
    return False


def _checks(status: str, context: dict[str, Any], events: list[Event],
            rows: list[dict[str, Any]], wal: int) -> list[tuple[bool, str]]:
    def of(type: str, step: str | None = None) -> list[Event]:
        return [e for e in events if e.type == type
                and (step is None or e.data.get("step_id") == step)]

    routed = [e.data.get("to_step_id") for e in of("transition", None)
              if e.data.get("from_step_id") == "route"]
    charge_done = of("step.completed", "charge")
    charge_outcomes = [(e.data.get("attempt"), e.data.get("outcome")) for e in charge_done]
    retries = of("step.retry", "charge")
    timed = [e for e in of("execution.waiting", "cool-off") if e.data.get("kind") == "time"]
    waited_ms = timed[0].data.get("wake_at", 0) - timed[0].timestamp_ms if timed else 0
    woke = [e for e in events if e.type == "execution.resumed" and timed
            and e.seq > timed[0].seq]
    slept_ms = woke[0].timestamp_ms - timed[0].timestamp_ms if woke and timed else 0
    stages = [r.get("stage") for r in rows]
    shipment = context.get("shipment") or {}
    return [
        (routed == ["charge"], f"route chose {routed} (order total below 1000 -> charge)"),
        (len(retries) == 1 and charge_outcomes == [(1, "failure"), (2, "success")],
         f"charge failed once with TRANSIENT and succeeded on retry: {charge_outcomes}"),
        (waited_ms == 2000 and slept_ms >= 2000,
         f"waited {waited_ms / 1000:g} s of simulated time (woke after "
         f"{slept_ms / 1000:g} s)"),
        (bool(of("token.created", "courier")) and bool(of("token.used"))
         and context.get("pickup") == PICKUP,
         "courier signal wait resumed with its token"),
        (status == "completed" and shipment.get("result", {}).get("tracking")
         == PICKUP["tracking"], f"execution {status} with a shipment"),
        (stages == ["validated", "charged", "shipped"] and wal == 0,
         f"{len(rows)} rows piped into order_log: {stages}"),
    ]
