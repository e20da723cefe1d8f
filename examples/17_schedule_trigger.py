"""A schedule trigger: a cron expression in a timezone fires once per tick.

The TestHarness runs the engine on simulated time, so a day of schedule passes in a
moment: an every-15-minutes schedule fires 96 times in 24 hours, each tick starting
one execution whose idempotency key names the schedule and the tick. Then the engine
is "down" for two hours (``outage``): with ``catchUp: once`` the missed ticks fire
once, for the latest of them. A six-field cron has seconds first (``*/10 * * * * *``).

On a real engine the same trigger is ``Engine(triggers=[...])`` or a ``triggers:``
section in a flow file; with several processors it still fires once per tick.

Run: python examples/17_schedule_trigger.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness

MINUTE = 60_000
START_MS = 1_767_225_660_000  # 2026-01-01T00:01:00Z: the simulated clock starts here


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("report")
async def report(params: HandlerParams) -> StepResult:
    return Result.success(f"report for {params.context['tickLocal']}")


flows = [{
    "id": "report", "version": "1.0.0", "initialStepId": "report",
    "steps": {"report": {"id": "report", "type": "report", "outputKey": "report",
                         "transitions": {"onSuccess": None}}},
}]
handlers = [report]
triggers = [{
    "id": "quarter-hourly", "kind": "schedule", "flowId": "report",
    "schedule": {"cron": "*/15 * * * *", "timezone": "Europe/Berlin", "catchUp": "once"},
}]


async def main() -> None:
    async with TestHarness(flows=flows, handlers=handlers, triggers=triggers,
                           start_ms=START_MS) as t:
        await t.settle()
        for _ in range(24 * 4):
            await t.advance(15 * MINUTE)
        ran = t.projection.execution_ids()
        record = await t.projection.get_trigger("quarter-hourly")
        assert record is not None
        print(f"one simulated day: {record.fired} ticks fired, {len(ran)} executions, "
              f"next at {record.next_fire_at}")
        check(record.fired == 96 and len(ran) == 96, "96 ticks, one execution each")
        sample = await t.get(ran[0])
        assert sample is not None
        print(f"  first: {sample.context['report']} (key {sample.idempotency_key})")

        await t.outage(2 * 60 * MINUTE + 7 * MINUTE)  # down past 8 ticks
        await t.advance(MINUTE)
        after = await t.projection.get_trigger("quarter-hourly")
        assert after is not None
        print(f"after a two-hour outage: fired {after.fired - record.fired}, skipped "
              f"{after.skipped - record.skipped}")
        check(after.fired - record.fired == 1, "catchUp once fires one missed tick")
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
