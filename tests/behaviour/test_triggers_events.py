"""Event triggers and manual fires through the engine (TestHarness): an order that
completes with a total starts its invoice once, with a mapped context; a retried
delivery starts one execution; a disabled trigger or a bad mapping refuses the fire."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.errors import CommandRejected, RegistrationError
from flowmonkey.events import names as n
from flowmonkey.kernel import triggers as kt
from flowmonkey.model.trigger import Trigger
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step


@handler("take")
async def take(p: HandlerParams) -> StepResult:
    return Result.success({"taken": True})


@handler("bill")
async def bill(p: HandlerParams) -> StepResult:
    return Result.success({"billed": p.execution.context.get("total")})


FLOWS = [flow("order", step("a", "take")), flow("invoice", step("a", "bill"))]

ON_PAID_ORDERS = Trigger.model_validate({
    "id": "bill-paid-orders", "kind": "event", "flowId": "invoice",
    "event": {"flowId": "order", "type": "execution.completed",
              "when": [{"path": "execution.context.total", "operator": "gt", "value": 0}]},
    "context": {"type": "template", "template": {"orderId": "${execution.id}",
                                                 "total": "${execution.context.total}"}},
})

HOOK = Trigger.model_validate({
    "id": "shop-hook", "kind": "webhook", "flowId": "invoice",
    "webhook": {"secret": "shop-secret"},
    "context": {"type": "path", "path": "body.order"},
})


def harness(*triggers: Trigger) -> TestHarness:
    return TestHarness(handlers=[take, bill], flows=FLOWS, triggers=list(triggers))


def invoices(t: TestHarness) -> list[str]:
    return [e.execution_id for e in t.events
            if e.type == n.EXECUTION_CREATED and e.data["flow_id"] == "invoice"]


async def test_a_completed_order_with_a_total_starts_its_invoice_once() -> None:
    async with harness(ON_PAID_ORDERS) as t:
        order = await t.run("order", {"total": 42})
        t.assert_completed(order.execution)
        await t.settle()
        [invoice_id] = invoices(t)
        invoice = await t.get(invoice_id)
        assert invoice is not None
        t.assert_completed(invoice)
        assert invoice.context["orderId"] == order.execution.id
        assert invoice.context["total"] == 42
        assert invoice.metadata is not None
        assert invoice.metadata["trigger"]["kind"] == "event"
        [fired] = [e for e in t.events if e.type == n.TRIGGER_FIRED]
        assert fired.data["source"]["key"].startswith(f"{order.execution.id}:")
        # the invoice's own end is reported to the trigger
        ended = [e for e in t.events if e.type == n.TRIGGER_RUN_ENDED]
        assert [e.data["execution_id"] for e in ended] == [invoice_id]


async def test_an_order_whose_condition_is_false_starts_nothing() -> None:
    async with harness(ON_PAID_ORDERS) as t:
        await t.run("order", {"total": 0})
        await t.run("order", {})
        await t.settle()
        assert invoices(t) == []
        assert not [e for e in t.events if e.type.startswith("trigger.") and
                    e.type != n.TRIGGER_REGISTERED]


async def test_each_order_starts_one_invoice() -> None:
    async with harness(ON_PAID_ORDERS) as t:
        orders = [(await t.run("order", {"total": i})).execution.id for i in range(1, 6)]
        await t.settle()
        found = invoices(t)
        assert len(found) == len(set(found)) == 5
        totals = sorted([(await t.get(i)).context["total"] for i in found])  # type: ignore[union-attr]
        assert totals == [1, 2, 3, 4, 5]
        assert len(orders) == 5


async def test_a_retried_delivery_starts_one_execution_and_answers_its_id() -> None:
    async with harness(HOOK) as t:
        first = await t.engine.fire_trigger("shop-hook", {"body": {"order": {"n": 1}}},
                                            "delivery-1", kind="webhook")
        again = await t.engine.fire_trigger("shop-hook", {"body": {"order": {"n": 1}}},
                                            "delivery-1", kind="webhook")
        await t.settle()
        assert first == again == kt.triggered_execution_id("shop-hook", "webhook",
                                                           "delivery-1")
        assert invoices(t) == [first]
        refusals = t.projection.rejections(first)
        assert [r.data["code"] for r in refusals] == [n.REJECT_EXECUTION_EXISTS]
        invoice = await t.get(first)
        assert invoice is not None
        assert invoice.context == {"n": 1}


async def test_a_disabled_trigger_and_a_bad_mapping_refuse_the_fire() -> None:
    async with harness(HOOK) as t:
        with pytest.raises(CommandRejected) as bad:
            await t.engine.fire_trigger("shop-hook", {"body": {"order": "x" * 2_000_000}})
        assert bad.value.code == kt.MAPPING_ERROR
        assert "shop-hook" in bad.value.message
        await t.engine.pause_trigger("shop-hook", by="ops", reason="audit")
        with pytest.raises(CommandRejected) as off:
            await t.engine.fire_trigger("shop-hook", {"body": {"order": {}}})
        assert off.value.code == kt.TRIGGER_DISABLED
        with pytest.raises(CommandRejected) as missing:
            await t.engine.fire_trigger("no-such-trigger", {})
        assert missing.value.code == kt.REJECT_TRIGGER_NOT_FOUND
        await t.settle()
        assert invoices(t) == []


@pytest.mark.parametrize(("definition", "named"), [
    ({"id": "loop", "kind": "event", "flowId": "order", "event": {"flowId": "order"}},
     "event.flowId"),
    ({"id": "bad-cron", "kind": "schedule", "flowId": "order",
      "schedule": {"cron": "* * *"}}, "schedule.cron"),
    ({"id": "no-kind", "flowId": "order"}, "kind"),
])
def test_an_engine_refuses_a_trigger_it_cannot_register(definition: dict[str, Any],
                                                         named: str) -> None:
    with pytest.raises(RegistrationError) as refused:
        harness(definition)  # type: ignore[arg-type]
    assert repr(definition["id"]) in refused.value.message
    assert named in refused.value.message
