"""An event trigger: when an execution of one flow emits an event, start another.

Here every completed ``order`` whose total is above zero starts an ``invoice`` with
a context mapped from the order's; a free order starts nothing. The decision is made
on the log, with the event that causes it: once per source event, however many
processors run, across restarts.

Run: python examples/18_event_trigger.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("take-order")
async def take_order(params: HandlerParams) -> StepResult:
    return Result.success({"ok": True})


@handler("bill")
async def bill(params: HandlerParams) -> StepResult:
    return Result.success(f"invoice for {params.context['order']} over "
                          f"{params.context['amount']}")


def one_step(flow_id: str, step_type: str) -> dict[str, object]:
    return {"id": flow_id, "version": "1.0.0", "initialStepId": "only",
            "steps": {"only": {"id": "only", "type": step_type, "outputKey": "out",
                               "transitions": {"onSuccess": None}}}}


flows = [one_step("order", "take-order"), one_step("invoice", "bill")]
handlers = [take_order, bill]
triggers = [{
    "id": "invoice-paid-orders", "kind": "event", "flowId": "invoice",
    "event": {"flowId": "order", "type": "execution.completed",
              "when": [{"path": "execution.context.total", "operator": "gt", "value": 0}]},
    "context": {"type": "template", "template": {"order": "${execution.context.id}",
                                                 "amount": "${execution.context.total}"}},
}]


async def main() -> None:
    async with Engine(flows=flows, handlers=handlers, triggers=triggers) as engine:
        for _ in range(500):  # registered by the engine's start, within moments
            if await engine.projection.get_trigger("invoice-paid-orders") is not None:
                break
            await asyncio.sleep(0.01)
        paid = await engine.create("order", {"id": "A-1", "total": 42})
        free = await engine.create("order", {"id": "B-2", "total": 0})
        await engine.wait(paid.execution.id)
        await engine.wait(free.execution.id)
        for _ in range(500):  # the invoice starts right after the order's last event
            record = await engine.projection.get_trigger("invoice-paid-orders")
            if record is not None and record.fired >= 1:
                break
            await asyncio.sleep(0.01)
        check(record is not None and record.last_execution_id is not None,
              "the trigger fired")
        assert record is not None
        assert record.last_execution_id is not None
        invoice = await engine.wait(record.last_execution_id)
        print(f"order A-1 completed -> {invoice.flow_id} {invoice.id}: "
              f"{invoice.context['out']}")
        check(invoice.context["out"] == "invoice for A-1 over 42", "the invoice ran")
        invoices = await engine.list(flow_id="invoice")
        print(f"invoices: {len(invoices.items)} (order B-2 was free)")
        check(len(invoices.items) == 1, "one invoice: the free order starts none")
        check((invoice.metadata or {})["trigger"]["id"] == "invoice-paid-orders",
              "the invoice says which trigger started it")
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
