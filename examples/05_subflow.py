"""Sub-flows: a step that starts a child execution of another flow.

The ``sub-flow`` handler (registered by the engine itself) starts the child with
the step's input as its context. With ``waitForCompletion`` (the default) the parent
waits and gets ``{childExecutionId, flowId, status, context}`` as the step's output;
a failed child fails the step. Fire-and-forget (``waitForCompletion: false``) starts
the child and moves on at once. Children link to their parent through
``parent_execution_id`` and can be listed with ``engine.list(parent_execution_id=...)``.

Run: python examples/05_subflow.py
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


@handler("price-item")
async def price_item(params: HandlerParams) -> StepResult:
    item = params.input
    return Result.success({"sku": item["sku"], "price": item["qty"] * 2.5})


@handler("notify")
async def notify(params: HandlerParams) -> StepResult:
    return Result.success({"sent": True, "to": params.input})


CHILD = {
    "id": "price", "version": "1.0.0", "initialStepId": "price",
    "steps": {"price": {"id": "price", "type": "price-item", "input": {"type": "full"},
                        "outputKey": "priced", "transitions": {"onSuccess": None}}},
}
NOTIFY = {
    "id": "notify", "version": "1.0.0", "initialStepId": "send",
    "steps": {"send": {"id": "send", "type": "notify", "input": {"type": "key", "key": "email"},
                       "outputKey": "notification", "transitions": {"onSuccess": None}}},
}
PARENT = {
    "id": "checkout", "version": "1.0.0", "initialStepId": "price-it",
    "steps": {
        "price-it": {
            "id": "price-it", "type": "sub-flow",
            "config": {"flowId": "price", "waitForCompletion": True},
            "input": {"type": "key", "key": "item"}, "outputKey": "pricing",
            "transitions": {"onSuccess": "tell-customer", "onFailure": None},
        },
        "tell-customer": {
            "id": "tell-customer", "type": "sub-flow",
            "config": {"flowId": "notify", "waitForCompletion": False},
            "input": {"type": "keys", "keys": ["email"]}, "outputKey": "notified",
            "transitions": {"onSuccess": None},
        },
    },
}


async def main() -> None:
    async with TestHarness(handlers=[price_item, notify], flows=[PARENT, CHILD, NOTIFY]) as t:
        r = await t.run("checkout", {"item": {"sku": "BANANA", "qty": 4},
                                     "email": "ada@example.com"})
        t.assert_completed(r.execution)
        pricing = r.execution.context["pricing"]
        print(f"waited for child {pricing['childExecutionId'][:8]}: {pricing['status']}, "
              f"priced {pricing['context']['priced']}")
        print(f"fire-and-forget: {r.execution.context['notified']}")
        await t.settle()
        children = (await t.engine.list(parent_execution_id=r.execution.id)).items
        for child in children:
            print(f"child {child.id[:8]} of flow {child.flow_id}: {child.status.value}")
        check(pricing["context"]["priced"] == {"sku": "BANANA", "price": 10.0}, "child output")
        check(r.execution.context["notified"]["mode"] == "fire-and-forget", "fire-and-forget")
        check(sorted(c.flow_id for c in children) == ["notify", "price"], "two children")
        check(all(c.status.value == "completed" for c in children), "children completed")
    print("sub-flow OK")


if __name__ == "__main__":
    asyncio.run(main())
