"""History and replay: with record_history each step attempt is recorded; the log holds
every event of an execution, and its state at any event can be rebuilt (FEATURES B8, F7)."""

from __future__ import annotations

from datetime import timedelta

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, key, step


@handler("double")
async def double(p: HandlerParams) -> StepResult:
    return Result.success(p.input * 2)


@handler("flaky")
async def flaky(p: HandlerParams) -> StepResult:
    if p.attempt == 1:
        return Result.failure("TRANSIENT", "first try fails")
    return Result.success("second try works")


@handler("nap")
async def nap(p: HandlerParams) -> StepResult:
    return Result.wait(1000, "nap")


F = flow(
    "hist",
    step("double", "double", input=key("x"), output_key="doubled", to="flaky"),
    step("flaky", "flaky", output_key="flaky", to="nap",
         retry={"maxAttempts": 1, "backoffMs": 250}),
    step("nap", "nap"),
)
HANDLERS = [double, flaky, nap]


async def test_history_records_each_step_attempt_with_outcome_and_attempt() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F], record_history=True) as t:
        r = await t.run("hist", {"x": 4})

        t.assert_completed(r.execution)
        h = r.execution.history
        assert [(e.step_id, e.handler_type, e.outcome, e.attempt) for e in h] == [
            ("double", "double", "success", 1),
            ("flaky", "flaky", "failure", 1),
            ("flaky", "flaky", "success", 2),
            ("nap", "nap", "wait", 1),
        ]
        assert h[0].output == 8
        assert h[1].error["code"] == "TRANSIENT"
        assert h[2].output == "second try works"
        assert all(e.duration_ms >= 0 and e.completed_at >= e.started_at for e in h)
        assert h[2].started_at - h[1].completed_at == timedelta(milliseconds=250)  # backoff


async def test_history_records_each_steps_input() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F], record_history=True) as t:
        r = await t.run("hist", {"x": 4})

        assert [e.input for e in r.execution.history] == [
            4,
            {"x": 4, "doubled": 8},
            {"x": 4, "doubled": 8},
            {"x": 4, "doubled": 8, "flaky": "second try works"},
        ]


async def test_without_record_history_no_history_is_kept() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F], record_history=False) as t:
        r = await t.run("hist", {"x": 4})

        t.assert_completed(r.execution)
        assert r.execution.history == []


async def test_history_returns_every_event_in_seq_order_without_gaps() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F]) as t:
        r = await t.run("hist", {"x": 4})

        events = await t.engine.history(r.execution.id)

        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].type == "execution.created"
        assert events[-1].type == "execution.completed"
        assert [e.event_id for e in events] == [e.event_id for e in r.events]
        assert events[-1].seq == r.execution.seq


async def test_replay_up_to_a_seq_equals_the_state_after_that_many_events() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F]) as t:
        r = await t.run("hist", {"x": 4})
        events = await t.engine.history(r.execution.id)

        first_done = next(e for e in events if e.type == "step.completed")
        at_first = await t.engine.replay(r.execution.id, upto_seq=first_done.seq)
        waiting = [e for e in events if e.type == "execution.waiting"][-1]  # the nap
        at_wait = await t.engine.replay(r.execution.id, upto_seq=waiting.seq)
        at_start = await t.engine.replay(r.execution.id, upto_seq=1)

        assert at_start is not None
        assert at_first is not None
        assert at_wait is not None
        assert at_start.seq == 1
        assert at_start.status == "pending"
        assert at_start.context == {"x": 4}
        assert at_first.seq == first_done.seq
        assert at_first.context == {"x": 4, "doubled": 8}
        assert at_first.status == "running"
        assert at_wait.status == "waiting"
        assert at_wait.context == {"x": 4, "doubled": 8, "flaky": "second try works"}
        assert at_wait.wake_at is not None


async def test_replay_of_every_prefix_advances_one_seq_at_a_time() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F]) as t:
        r = await t.run("hist", {"x": 4})
        events = await t.engine.history(r.execution.id)

        for event in events:
            past = await t.engine.replay(r.execution.id, upto_seq=event.seq)
            assert past is not None
            assert past.seq == event.seq
            assert past.updated_at == event.timestamp


async def test_replay_of_all_events_equals_the_current_state() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F]) as t:
        r = await t.run("hist", {"x": 4})

        replayed = await t.engine.replay(r.execution.id)

        assert replayed == await t.engine.get(r.execution.id)
        assert replayed == r.execution


async def test_replay_of_an_unknown_execution_is_none() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[F]) as t:
        assert await t.engine.replay("no-such-execution") is None
