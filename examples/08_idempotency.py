"""Idempotent starts: the same idempotency key inside its window starts nothing new.

``engine.create(flow_id, context, idempotency_key=..., idempotency_window_ms=...)``
returns the existing execution for a duplicate (``created`` False,
``idempotency_hit`` True, and an ``idempotency.hit`` event). The window defaults to
24 hours and is capped at 7 days; keys are scoped per tenant and flow.

Run: python examples/08_idempotency.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


CHARGES: list[str] = []


@handler("charge")
async def charge(params: HandlerParams) -> StepResult:
    CHARGES.append(params.input)
    return Result.success({"charged": params.input})


FLOW = {"id": "payment", "version": "1.0.0", "initialStepId": "charge",
        "steps": {"charge": {"id": "charge", "type": "charge",
                             "input": {"type": "key", "key": "orderId"},
                             "outputKey": "receipt", "transitions": {"onSuccess": None}}}}


async def main() -> None:
    async with TestHarness(handlers=[charge], flows=[FLOW]) as t:
        first = await t.create("payment", {"orderId": "A-1"}, idempotency_key="order-A-1",
                               idempotency_window_ms=3_600_000)
        again = await t.create("payment", {"orderId": "A-1"}, idempotency_key="order-A-1")
        print(f"first:  created={first.created} id={first.execution.id[:8]}")
        print(f"again:  created={again.created} idempotency_hit={again.idempotency_hit} "
              f"id={again.execution.id[:8]}")
        check(first.created and not first.idempotency_hit, "the first start creates")
        check(again.idempotency_hit and again.execution.id == first.execution.id,
              "the duplicate returns the same execution")
        other = await t.create("payment", {"orderId": "A-1"}, idempotency_key="order-A-1",
                               tenant_id="another-tenant")
        print(f"other tenant, same key: created={other.created}")
        check(other.created, "keys are scoped per tenant")
        hits = [e for e in t.events if e.type == "idempotency.hit"]
        print(f"idempotency.hit events: {len(hits)}; charges made: {CHARGES}")
        check(len(hits) == 1 and CHARGES == ["A-1", "A-1"], "charged once per tenant")

        # after the window, the key can start a new execution
        await t.advance(3_600_001)
        later = await t.create("payment", {"orderId": "A-1"}, idempotency_key="order-A-1")
        print(f"after the window: created={later.created}")
        check(later.created and later.execution.id != first.execution.id, "window expired")
    print("idempotency OK")


if __name__ == "__main__":
    asyncio.run(main())
