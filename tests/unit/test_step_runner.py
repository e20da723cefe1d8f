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
