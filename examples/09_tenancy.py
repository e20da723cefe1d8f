"""Multi-tenancy: every execution, event and row can belong to a tenant.

Pass ``tenant_id`` when creating an execution; queries scoped to a tenant
(``engine.list(tenant_id=...)``, ``engine.get(id, tenant_id=...)``) never return
another tenant's data.

Run: python examples/09_tenancy.py
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


@handler("welcome")
async def welcome(params: HandlerParams) -> StepResult:
    return Result.success(f"welcome {params.input} of {params.execution.tenant_id}")


FLOW = {"id": "onboard", "version": "1.0.0", "initialStepId": "welcome",
        "steps": {"welcome": {"id": "welcome", "type": "welcome",
                              "input": {"type": "key", "key": "user"},
                              "outputKey": "message", "transitions": {"onSuccess": None}}}}


async def main() -> None:
    async with TestHarness(handlers=[welcome], flows=[FLOW]) as t:
        acme = [await t.run("onboard", {"user": u}, tenant_id="acme") for u in ("ann", "al")]
        globex = await t.run("onboard", {"user": "gus"}, tenant_id="globex")
        for r in [*acme, globex]:
            print(f"{r.execution.tenant_id:<7} {r.execution.context['message']}")
            check(all(e.tenant_id == r.execution.tenant_id for e in r.events),
                  "events carry the tenant")
        acme_page = await t.engine.list(tenant_id="acme")
        globex_page = await t.engine.list(tenant_id="globex")
        print(f"acme sees {len(acme_page.items)} executions, globex sees "
              f"{len(globex_page.items)}")
        check(len(acme_page.items) == 2 and len(globex_page.items) == 1, "scoped lists")
        hidden = await t.engine.get(globex.execution.id, tenant_id="acme")
        visible = await t.engine.get(globex.execution.id, tenant_id="globex")
        print(f"acme reading globex's execution: {hidden}; globex: {visible is not None}")
        check(hidden is None and visible is not None, "scoped get")
    print("tenancy OK")


if __name__ == "__main__":
    asyncio.run(main())
