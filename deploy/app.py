"""The example app of the Docker Compose deployment: one order flow and its handlers.

The processors load it with ``flowmonkey processor --app /app/app.py`` (compose mounts
this file at ``/app/app.py``); any module with ``flows`` and ``handlers`` works the
same way. Check it without any service with ``flowmonkey validate deploy/app.py``.

``order-fulfilment`` shows the two things a distributed runtime must not lose:

* ``validate``: totals the order; an order without items fails the execution
  (``EMPTY_ORDER``, no retry);
* ``charge``: the payment gateway is "busy" on the first attempt of every order, so
  the step is retried after a 1 s backoff (a durable timer, kept in the log);
* ``settle``: the built-in ``delay`` handler waits 2 s for the payment to settle
  (the execution is ``waiting``; the wake-up time is in the log too);
* ``ship``: returns a tracking number, and the execution completes.

Kill a processor in the middle (``docker kill -s KILL flowmonkey-processor-1``) and the
surviving one takes its partitions over, rebuilds their state from the events topic
and carries on: the retry and the delay still fire, each step's result is recorded
once.

A changed flow needs a new ``version``: flows are published on the flows topic and
are immutable there, so processors refuse a different definition under an existing
version.
"""

from __future__ import annotations

from typing import Any

from flowmonkey import HandlerParams, Result, StepResult, handler


@handler("validate-order", description="Total the order; fail when it has no items.")
async def validate_order(params: HandlerParams) -> StepResult:
    order: dict[str, Any] = params.input if isinstance(params.input, dict) else {}
    items = order.get("items") or []
    if not items:
        return Result.failure("EMPTY_ORDER", f"order {order.get('id')!r} has no items")
    total = round(sum(float(i.get("qty", 1)) * float(i.get("price", 0)) for i in items), 2)
    return Result.success({"orderId": order.get("id"), "items": len(items), "total": total})


@handler("charge-payment", description="Charge the order; the gateway is busy at first.")
async def charge_payment(params: HandlerParams) -> StepResult:
    # Decided by the attempt number, not by chance or a clock, so a replayed or
    # re-run attempt behaves the same: attempt 1 always fails, attempt 2 succeeds.
    if params.attempt == 1:
        return Result.failure("GATEWAY_BUSY", "the payment gateway asked to retry later")
    summary: dict[str, Any] = params.input if isinstance(params.input, dict) else {}
    # The attempt id stays the same when a crash makes an attempt run again: a real
    # gateway would take it as the idempotency key, so a re-run never charges twice.
    return Result.success({"charged": summary.get("total"), "attempt": params.attempt,
                           "idempotencyKey": params.attempt_id})


@handler("ship-order", description="Hand the order to the carrier.")
async def ship_order(params: HandlerParams) -> StepResult:
    summary: dict[str, Any] = params.input if isinstance(params.input, dict) else {}
    return Result.success({"orderId": summary.get("orderId"),
                           "tracking": f"TRK-{params.execution.id[:8].upper()}"})


ORDER_FLOW: dict[str, Any] = {
    "id": "order-fulfilment",
    "version": "1.0.0",
    "name": "Order fulfilment",
    "description": "Validate, charge (retried once), wait for settlement, ship.",
    "initialStepId": "validate",
    "steps": {
        "validate": {
            "type": "validate-order", "input": {"type": "key", "key": "order"},
            "outputKey": "summary", "transitions": {"onSuccess": "charge"},
        },
        "charge": {
            "type": "charge-payment", "input": {"type": "key", "key": "summary"},
            "outputKey": "payment",
            "retry": {"maxAttempts": 2, "backoffMs": 1000, "retryOn": ["GATEWAY_BUSY"]},
            "transitions": {"onSuccess": "settle"},
        },
        "settle": {
            "type": "delay", "name": "Wait for the payment to settle",
            "config": {"seconds": 2}, "transitions": {"onSuccess": "ship"},
        },
        "ship": {
            "type": "ship-order", "input": {"type": "key", "key": "summary"},
            "outputKey": "shipment", "transitions": {"onSuccess": None},
        },
    },
}

flows = [ORDER_FLOW]
handlers = [validate_order, charge_payment, ship_order]
