"""Switch routing with the built-in ``switch`` handler.

``switch`` reads the value at ``path`` in the step's input and goes to the step named
by ``cases[value]`` (values compare by their string form, e.g. ``true``, ``1``),
else to ``default``; a ``null`` target completes the flow.

Run: python examples/04_switch.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey.handlers import builtin
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


def answer(text: str) -> dict[str, object]:
    return {"type": "transform", "config": {"expression": f"'{text}'"},
            "outputKey": "handledBy", "transitions": {"onSuccess": None}}


FLOW = {
    "id": "router", "version": "1.0.0", "initialStepId": "route",
    "steps": {
        "route": {
            "id": "route", "type": "switch",
            "config": {"path": "method",
                       "cases": {"GET": "handle-get", "POST": "handle-post"},
                       "default": "handle-other"},
            "input": {"type": "key", "key": "request"},
        },
        # steps given without an id take it from their key
        "handle-get": answer("read"),
        "handle-post": answer("create"),
        "handle-other": answer("unsupported"),
    },
}


async def main() -> None:
    expected = {"GET": "read", "POST": "create", "DELETE": "unsupported"}
    async with TestHarness(handlers=builtin(), flows=[FLOW]) as t:
        for method, want in expected.items():
            r = await t.run("router", {"request": {"method": method, "path": "/orders"}})
            t.assert_completed(r.execution)
            got = r.execution.context["handledBy"]["result"]
            print(f"{method:<6} -> {got}")
            check(got == want, f"{method} should be handled as {want}")
    print("switch OK")


if __name__ == "__main__":
    asyncio.run(main())
