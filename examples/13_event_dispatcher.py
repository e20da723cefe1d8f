"""EventDispatcher: subscribe to the engine's events.

``EventDispatcher(mode="async")`` (the default; ``"sync"`` calls listeners inline)
fans every event out to listeners registered with ``on(type, listener)`` or
``on("*", listener)``; ``on`` returns an unsubscribe function. Listeners get frozen
events, may be async, and one listener's exception never reaches another listener
or the engine. ``listener_count``, ``off``, ``remove_all`` and ``await flush()``
manage them. Pass it to the engine: ``Engine(dispatcher=...)``.

Run: python examples/13_event_dispatcher.py
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

from pydantic import ValidationError

from flowmonkey import (
    Engine,
    Event,
    EventDispatcher,
    HandlerParams,
    Result,
    StepResult,
    handler,
)


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("work")
async def work(params: HandlerParams) -> StepResult:
    return Result.success({"n": params.input})


FLOW = {"id": "two-steps", "version": "1.0.0", "initialStepId": "a",
        "steps": {"a": {"id": "a", "type": "work", "input": {"type": "static", "value": 1},
                        "outputKey": "a", "transitions": {"onSuccess": "b"}},
                  "b": {"id": "b", "type": "work", "input": {"type": "static", "value": 2},
                        "outputKey": "b", "transitions": {"onSuccess": None}}}}


async def main() -> None:
    dispatcher = EventDispatcher(mode="async", on_error=lambda exc, event: print(
        f"  (listener error isolated: {exc!r} on {event.type})"))
    counts: Counter[str] = Counter()
    steps: list[str] = []
    audited: list[Event] = []

    def count_all(event: Event) -> None:
        counts[event.type] += 1

    async def audit(event: Event) -> None:  # async listeners are awaited by flush()
        await asyncio.sleep(0)
        audited.append(event)

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    dispatcher.on("*", count_all)
    unsubscribe_audit = dispatcher.on("execution.completed", audit)
    dispatcher.on("step.completed", lambda e: steps.append(str(e.data["step_id"])))
    dispatcher.on("execution.started", broken)
    print(f"listeners: step.completed={dispatcher.listener_count('step.completed')} "
          f"*={dispatcher.listener_count('*')}")

    async with Engine(flows=[FLOW], handlers=[work], dispatcher=dispatcher) as engine:
        first = await engine.create("two-steps", {})
        done = await engine.wait(first.execution.id)
        await dispatcher.flush()
        print(f"execution {done.status.value}; steps seen: {steps}; audited: {len(audited)}")
        check(done.status.value == "completed", "the broken listener did not stop the engine")
        check(steps == ["a", "b"] and len(audited) == 1, "typed listeners ran")

        unsubscribe_audit()
        dispatcher.remove_all("step.completed")
        second = await engine.create("two-steps", {})
        await engine.wait(second.execution.id)
        await dispatcher.flush()
        check(len(audited) == 1 and steps == ["a", "b"], "unsubscribed listeners stay quiet")
        check(counts["execution.completed"] == 2, "the wildcard saw both executions")

    event = audited[0]
    try:
        event.type = "tampered"  # type: ignore[misc]
        check(False, "events are frozen")
    except ValidationError:
        print("events are frozen: assignment refused")
    print(f"event counts: {dict(sorted(counts.items()))}")
    print("event dispatcher OK")


if __name__ == "__main__":
    asyncio.run(main())
