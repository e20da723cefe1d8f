"""Schedules on simulated time (TestHarness): one execution per tick for a day, the
daylight-saving changes of Europe/Berlin, catch-up after an outage, overlap with a run
that waits, pause and resume, and what a scheduled run knows of its tick."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.kernel import cron
from flowmonkey.model.trigger import Trigger
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@handler("note")
async def note(p: HandlerParams) -> StepResult:
    return Result.success({"seen": True})


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval")


FLOWS = [flow("report", step("a", "note")), flow("held", step("a", "approval"))]
HANDLERS = [note, approval]


def schedule(id: str, cron_: str, flow_id: str = "report", **settings: Any) -> Trigger:
    return Trigger.model_validate({"id": id, "kind": "schedule", "flowId": flow_id,
                                   "schedule": {"cron": cron_, **settings}})


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def fired(t: TestHarness, trigger_id: str) -> list[int]:
    return [e.data["tick"] for e in t.events
            if e.type == n.TRIGGER_FIRED and e.execution_id == f"trigger:{trigger_id}"]


def created(t: TestHarness, flow_id: str = "report") -> list[str]:
    return [e.execution_id for e in t.events
            if e.type == n.EXECUTION_CREATED and e.data["flow_id"] == flow_id]


async def test_every_minute_for_a_simulated_day_gives_exactly_1440_executions() -> None:
    start = ms("2024-05-01T00:00:00+00:00")
    async with TestHarness(handlers=HANDLERS, flows=FLOWS, start_ms=start,
                           triggers=[schedule("minutely", "* * * * *")]) as t:
        for _ in range(24):
            await t.advance(HOUR)
        ticks = fired(t, "minutely")
        assert len(ticks) == len(set(ticks)) == 1440
        assert ticks == [start + (i + 1) * MINUTE for i in range(1440)]
        runs = created(t)
        assert len(runs) == len(set(runs)) == 1440
        completed = [e for e in t.events if e.type == n.EXECUTION_COMPLETED]
        assert len(completed) == 1440


async def test_berlin_daylight_saving_changes_neither_skip_nor_double_a_tick() -> None:
    # from noon UTC the day before spring forward (31 March 2024) ...
    spring = ms("2024-03-30T12:00:00+00:00")
    triggers = [schedule("hourly", "0 * * * *", timezone="Europe/Berlin"),
                schedule("nightly", "30 2 * * *", timezone="Europe/Berlin")]
    async with TestHarness(handlers=HANDLERS, flows=FLOWS, start_ms=spring,
                           triggers=triggers) as t:
        await t.advance(2 * DAY)
        days = Counter(cron.to_iso(tick, "Europe/Berlin")[:10] for tick in fired(t, "hourly"))
        assert days["2024-03-31"] == 23  # 02:00 local never happened
        nightly = [cron.to_iso(tick, "Europe/Berlin") for tick in fired(t, "nightly")]
        # the 02:30 that did not exist fires once, shifted by the gap
        assert nightly == ["2024-03-31T03:30:00.000+02:00", "2024-04-01T02:30:00.000+02:00"]
    # ... and the day before fall back (27 October 2024)
    autumn = ms("2024-10-26T12:00:00+00:00")
    async with TestHarness(handlers=HANDLERS, flows=FLOWS, start_ms=autumn,
                           triggers=triggers) as t:
        await t.advance(2 * DAY)
        hourly = fired(t, "hourly")
        days = Counter(cron.to_iso(tick, "Europe/Berlin")[:10] for tick in hourly)
        assert days["2024-10-27"] == 25  # 02:00 local happened twice: an hour each
        assert len(hourly) == len(set(hourly))
        nightly = [cron.to_iso(tick, "Europe/Berlin") for tick in fired(t, "nightly")]
        # 02:30 happened twice: the schedule fires once, at the first
        assert nightly == ["2024-10-27T02:30:00.000+02:00", "2024-10-28T02:30:00.000+01:00"]
        assert len(created(t)) == len(hourly) + 2


async def _after_outage(**settings: Any) -> TestHarness:
    t = TestHarness(handlers=HANDLERS, flows=FLOWS, start_ms=ms("2024-05-01T00:00:30+00:00"),
                    triggers=[schedule("every-minute", "* * * * *", **settings)])
    await t.advance(3 * MINUTE)  # three ticks on time
    # nothing runs for three hours and 75 s: the latest missed tick is 45 s late, past
    # the grace of catch_up=skip (half a period, at most 60 s: a tick a restart delays
    # by seconds still fires)
    await t.outage(3 * HOUR + 75_000)
    await t.advance(2 * MINUTE)  # then two more on time
    return t


async def test_catch_up_skip_fires_none_of_the_ticks_missed_in_an_outage() -> None:
    t = await _after_outage(catchUp="skip")
    try:
        assert len(fired(t, "every-minute")) == 5
        [skipped] = [e for e in t.events if e.type == n.TRIGGER_SKIPPED]
        assert skipped.data["reason"] == "catch_up"
        assert len(created(t)) == 5
    finally:
        await t.close()


async def test_catch_up_once_fires_one_for_the_outage() -> None:
    t = await _after_outage(catchUp="once")
    try:
        assert len(fired(t, "every-minute")) == 6
        assert len(created(t)) == 6
    finally:
        await t.close()


async def test_catch_up_all_fires_the_missed_ticks_up_to_the_limit() -> None:
    t = await _after_outage(catchUp="all", catchUpLimit=50)
    try:
        ticks = fired(t, "every-minute")
        assert len(ticks) == 3 + 50 + 2
        assert len(set(ticks)) == len(ticks) == len(created(t))
        assert ticks == sorted(ticks)
    finally:
        await t.close()


async def test_overlap_skip_waits_for_the_run_and_allow_does_not() -> None:
    triggers = [schedule("exclusive", "* * * * *", flow_id="held", overlap="skip"),
                schedule("shared", "* * * * *", flow_id="held", overlap="allow")]
    async with TestHarness(handlers=HANDLERS, flows=FLOWS, triggers=triggers,
                           start_ms=ms("2024-05-01T00:00:30+00:00")) as t:
        await t.advance(5 * MINUTE)
        assert len(fired(t, "exclusive")) == 1
        assert len(fired(t, "shared")) == 5
        overlaps = [e for e in t.events if e.type == n.TRIGGER_SKIPPED
                    and e.execution_id == "trigger:exclusive"]
        assert len(overlaps) == 4
        assert {e.data["reason"] for e in overlaps} == {"overlap"}
        # the run ends: the next tick fires again
        [first] = [e.data["execution_id"] for e in t.events if e.type == n.TRIGGER_FIRED
                   and e.execution_id == "trigger:exclusive"]
        execution = await t.get(first)
        assert execution is not None
        assert execution.resume_token is not None
        await t.resume(first, execution.resume_token, {"ok": True})
        await t.advance(MINUTE)
        assert len(fired(t, "exclusive")) == 2


async def test_a_scheduled_run_names_its_schedule_and_tick() -> None:
    start = ms("2024-05-01T00:00:30+00:00")
    async with TestHarness(handlers=HANDLERS, flows=FLOWS, start_ms=start,
                           triggers=[schedule("daily", "0 6 * * *",
                                              timezone="Europe/Berlin")]) as t:
        await t.advance(DAY)
        [fire] = [e for e in t.events if e.type == n.TRIGGER_FIRED]
        tick = fire.data["tick"]
        assert cron.to_iso(tick, "Europe/Berlin") == "2024-05-01T06:00:00.000+02:00"
        execution = await t.get(fire.data["execution_id"])
        assert execution is not None
        assert execution.idempotency_key == "trigger:daily@2024-05-01T04:00:00.000Z"
        assert execution.metadata == {"trigger": {"id": "daily", "kind": "schedule",
                                                  "source": str(tick)}}
        assert execution.context["tickLocal"] == "2024-05-01T06:00:00.000+02:00"
        assert execution.context["scheduledAtMs"] == tick


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now() -> None:
    start = ms("2024-05-01T00:00:30+00:00")
    async with TestHarness(handlers=HANDLERS, flows=FLOWS, start_ms=start,
                           triggers=[schedule("minutely", "* * * * *")]) as t:
        await t.advance(2 * MINUTE)
        assert await t.engine.pause_trigger("minutely", by="ops", reason="deploy")
        assert not await t.engine.pause_trigger("minutely")
        await t.advance(10 * MINUTE)
        assert len(fired(t, "minutely")) == 2
        assert await t.engine.resume_trigger("minutely", by="ops")
        await t.advance(2 * MINUTE)
        assert len(fired(t, "minutely")) == 4
        assert not [e for e in t.events if e.type == n.TRIGGER_SKIPPED]
