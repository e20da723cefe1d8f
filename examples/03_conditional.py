"""Conditional routing with the built-in ``conditional`` handler.

Conditions are evaluated in order against the step's input; the first match wins
and the flow goes to its ``target``; ``default`` applies when nothing matches (no
default and no match fails the step with ``NO_MATCH``). Operators: eq, neq, gt, gte,
lt, lte, in, nin, contains, startsWith, endsWith, exists, notExists, matches.

Handlers can also route themselves: ``Result.success(output, next_step="step-id")``.

Run: python examples/03_conditional.py
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from flowmonkey.handlers import builtin
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


def grade(letter: str) -> dict[str, object]:
    return {"id": f"grade-{letter}", "type": "transform",
            "config": {"expression": f"'{letter.upper()}'"}, "outputKey": "grade",
            "transitions": {"onSuccess": None}}


FLOW = {
    "id": "grading", "version": "1.0.0", "initialStepId": "route",
    "steps": {
        "route": {
            "id": "route", "type": "conditional",
            "config": {
                "conditions": [
                    {"path": "name", "op": "notExists", "target": "grade-x"},
                    {"path": "score", "op": "gte", "value": 90, "target": "grade-a"},
                    {"path": "score", "op": "gte", "value": 70, "target": "grade-b"},
                ],
                "default": "grade-c",
            },
            "input": {"type": "full"},
            "transitions": {"onSuccess": None},
        },
        "grade-a": grade("a"), "grade-b": grade("b"), "grade-c": grade("c"),
        "grade-x": grade("x"),
    },
}


async def main() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "Ada", "score": 95}, "A"), ({"name": "Bob", "score": 70}, "B"),
        ({"name": "Cy", "score": 12}, "C"), ({"score": 99}, "X"),
    ]
    async with TestHarness(handlers=builtin(), flows=[FLOW]) as t:
        for context, expected in cases:
            r = await t.run("grading", context)
            t.assert_completed(r.execution)
            got = r.execution.context["grade"]["result"]
            path = [e["to_step_id"] for e in r.events if e.type == "transition"]
            print(f"{context} -> {path} -> grade {got}")
            check(got == expected, f"{context} should get {expected}")
    print("conditional OK")


if __name__ == "__main__":
    asyncio.run(main())
