"""StepRunner deadlines: one timer for all running attempts, with asyncio.timeout's
semantics (abort signal first, then cancellation turned into a timeout result)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from flowmonkey.events.envelope import Command
from flowmonkey.handlers.base import HandlerParams, handler
from flowmonkey.kernel.state import ExecutionOptions, ExecutionState
from flowmonkey.model import Step
from flowmonkey.model.result import Result, StepResult
from flowmonkey.processors.runner import StepRunner


def state(n: int = 0) -> ExecutionState:
    return ExecutionState(id=f"e{n}", flow_id="f", flow_version="1", tenant_id=None,
                          created_at=0, options=ExecutionOptions(), attempt_id=f"e{n}:2",
                          attempt=1)


def runner() -> StepRunner:
    return StepRunner(default_timeout_ms=30, clock_ms=lambda: 0)


async def run(r: StepRunner, fn: Any, n: int = 0, timeout_ms: int | None = None) -> Command:
    step = Step(id="s", type="t", timeout_ms=timeout_ms)
    return await asyncio.create_task(r.run(state(n), step, handler("t")(fn), asyncio.Event()))


async def test_a_handler_past_its_deadline_sees_the_abort_then_times_out() -> None:
    seen: list[bool] = []

    async def slow(p: HandlerParams) -> StepResult:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append(p.abort.is_set())
            raise
        return Result.success()

    command = await run(runner(), slow)

    assert command.data["timed_out"] is True
    assert command.data["timeout_ms"] == 30
    assert seen == [True]


async def test_only_the_attempts_past_their_deadline_time_out() -> None:
    async def fast(p: HandlerParams) -> StepResult:
        await asyncio.sleep(0)
        return Result.success(1)

    async def slow(p: HandlerParams) -> StepResult:
        await asyncio.sleep(10)
        return Result.success(2)

    r = runner()
    commands = await asyncio.gather(run(r, fast, 1), run(r, slow, 2), run(r, fast, 3),
                                    run(r, slow, 4, timeout_ms=60), run(r, fast, 5))

    assert [c.data.get("timed_out", False) for c in commands] == [
        False, True, False, True, False]
    assert [c.data["timeout_ms"] for c in commands if "timeout_ms" in c.data] == [30, 60]


async def test_a_handler_that_swallows_the_cancellation_keeps_its_result() -> None:
    async def stubborn(p: HandlerParams) -> StepResult:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return Result.success("late")

    r = runner()
    step = Step(id="s", type="t")
    task = asyncio.create_task(r.run(state(), step, handler("t")(stubborn), asyncio.Event()))
    command = await task

    assert command.data["result"].output == "late"
    assert task.cancelling() == 0


async def test_cancelling_the_attempt_from_outside_is_not_a_timeout() -> None:
    started = asyncio.Event()

    async def waits(p: HandlerParams) -> StepResult:
        started.set()
        await asyncio.sleep(10)
        return Result.success()

    r = StepRunner(default_timeout_ms=10_000, clock_ms=lambda: 0)
    task = asyncio.create_task(
        r.run(state(), Step(id="s", type="t"), handler("t")(waits), asyncio.Event()))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_handler_raising_timeout_error_itself_counts_as_timed_out() -> None:
    async def raises(p: HandlerParams) -> StepResult:
        raise TimeoutError("upstream")

    command = await run(runner(), raises)

    assert command.data["timed_out"] is True


# --------------------------------------------------------------------------- start


async def test_a_handler_that_never_waits_is_answered_by_start_itself() -> None:
    async def at_once(p: HandlerParams) -> StepResult:
        return Result.success({"n": 1})

    outcome = runner().start(state(), Step(id="s", type="t"), handler("t")(at_once),
                             asyncio.Event())

    assert isinstance(outcome, Command)
    assert outcome.data["result"].output == {"n": 1}


async def test_a_handler_that_waits_is_finished_by_the_coroutine_start_returns() -> None:
    order: list[str] = []

    async def waits(p: HandlerParams) -> StepResult:
        order.append("before")
        await asyncio.sleep(0)
        order.append("after")
        return Result.success({"n": 2})

    outcome = runner().start(state(), Step(id="s", type="t"), handler("t")(waits),
                             asyncio.Event())

    # it ran up to its first wait, and no further
    assert order == ["before"]
    assert not isinstance(outcome, Command)
    command = await asyncio.create_task(outcome)
    assert order == ["before", "after"]
    assert command.data["result"].output == {"n": 2}


async def test_a_waiting_handler_still_times_out_and_sees_exceptions_thrown_in() -> None:
    cleaned: list[bool] = []

    async def stuck(p: HandlerParams) -> StepResult:
        await asyncio.sleep(0)  # resumed once by the task, then stuck
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(p.abort.is_set())
        return Result.success()

    outcome = runner().start(state(), Step(id="s", type="t"), handler("t")(stuck),
                             asyncio.Event())
    assert not isinstance(outcome, Command)
    command = await asyncio.create_task(outcome)

    assert command.data["timed_out"] is True
    assert cleaned == [True]


@pytest.mark.parametrize("raised", [ValueError("bad"), asyncio.CancelledError()])
async def test_an_exception_before_the_first_wait_is_the_handlers_error(
        raised: BaseException) -> None:
    async def fails(p: HandlerParams) -> StepResult:
        raise raised

    outcome = runner().start(state(), Step(id="s", type="t"), handler("t")(fails),
                             asyncio.Event())

    # a CancelledError of the handler's own cannot cancel whoever called start
    assert isinstance(outcome, Command)
    assert outcome.data["raised"]["code"] == "HANDLER_ERROR"


# --------------------------------------------------------------------------- what handlers get


async def test_a_step_without_a_handler_in_this_process_fails_through_its_result() -> None:
    outcome = runner().start(state(), Step(id="s", type="absent"), None, asyncio.Event())

    assert isinstance(outcome, Command)
    assert outcome.command_id == "result:e0:2"
    assert outcome.data["raised"] == {
        "code": "HANDLER_NOT_FOUND",
        "message": "no handler registered for type 'absent' (step 's')"}


async def test_what_a_handler_changes_in_what_it_received_stays_its_own() -> None:
    st = state()
    st.context = {"order": {"qty": 2, "items": [{"qty": 5}]}}
    step = Step(id="s", type="t", config={"limits": {"max": 5}})

    async def meddle(p: HandlerParams) -> StepResult:
        p.input["order"]["qty"] = 999
        p.context["order"]["items"][0]["qty"] = 1
        p.helpers.get("order")["items"].append("forged")
        p.execution.context["order"]["qty"] = 0
        p.config["limits"]["max"] = 0
        p.helpers.set("order.qty", 3)  # the one change that counts: a recorded write
        return Result.success()

    outcome = runner().start(st, step, handler("t")(meddle), asyncio.Event())

    assert isinstance(outcome, Command)
    assert "raised" not in outcome.data
    assert st.context == {"order": {"qty": 2, "items": [{"qty": 5}]}}
    assert step.config == {"limits": {"max": 5}}
    assert outcome.data["writes"] == [("order.qty", 3)]
