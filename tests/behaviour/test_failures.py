"""Failures, handler errors, timeouts, retries and the step limit (FEATURES A5–A7)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.handlers import FunctionHandler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of


@handler("fail")
async def fail(p: HandlerParams) -> StepResult:
    return Result.failure("PAYMENT_DECLINED", "card declined", {"last4": "4242"})


@handler("recover")
async def recover(p: HandlerParams) -> StepResult:
    return Result.success("recovered")


async def test_a_failure_follows_the_on_failure_branch() -> None:
    f = flow("branch", step("pay", "fail", on_failure="refund"),
             step("refund", "recover", output_key="refund"))
    async with TestHarness(handlers=[fail, recover], flows=[f]) as t:
        r = await t.run("branch")

        t.assert_completed(r.execution)
        assert r.execution.context["refund"] == "recovered"
        transition = next(e for e in r.events if e.type == "transition")
        assert transition.data == {"from_step_id": "pay", "to_step_id": "refund",
                                   "outcome": "failure"}


async def test_a_failure_without_on_failure_fails_with_the_handlers_code() -> None:
    f = flow("no-branch", step("pay", "fail"))
    async with TestHarness(handlers=[fail], flows=[f]) as t:
        r = await t.run("no-branch")

        t.assert_failed(r.execution, "PAYMENT_DECLINED")
        assert r.execution.error is not None
        assert r.execution.error.message == "card declined"
        assert r.execution.error.step_id == "pay"
        assert r.execution.error.details == {"last4": "4242"}


async def test_a_failed_step_still_emits_step_completed_with_outcome_failure() -> None:
    f = flow("no-branch", step("pay", "fail"))
    async with TestHarness(handlers=[fail], flows=[f]) as t:
        r = await t.run("no-branch")

        assert types_of(r.events, prefix="step.") == ["step.started", "step.completed"]
        completed = next(e for e in r.events if e.type == "step.completed")
        assert completed.data["outcome"] == "failure"
        assert completed.data["error"]["code"] == "PAYMENT_DECLINED"
        assert types_of(r.events)[-1] == "execution.failed"


async def test_a_failure_without_a_code_fails_with_step_failed() -> None:
    @handler("vague")
    async def vague(p: HandlerParams) -> StepResult:
        return {"outcome": "failure"}  # type: ignore[return-value]  # the original's shape

    async with TestHarness(handlers=[vague], flows=[flow("vague", step("a", "vague"))]) as t:
        r = await t.run("vague")

        t.assert_failed(r.execution, "STEP_FAILED")


async def test_a_failure_with_a_next_step_override_goes_there_instead_of_on_failure() -> None:
    @handler("fail-to")
    async def fail_to(p: HandlerParams) -> StepResult:
        return {"outcome": "failure",  # type: ignore[return-value]  # the original's shape
                "error": {"code": "DECLINED", "message": "no"},
                "nextStepOverride": p.config["to"]}

    f = flow("override", step("pay", "fail-to", on_failure="refund", config={"to": "alt"}),
             step("refund", "recover", output_key="refund"),
             step("alt", "recover", output_key="alt"))
    async with TestHarness(handlers=[fail_to, recover], flows=[f]) as t:
        r = await t.run("override")

        t.assert_completed(r.execution)
        assert r.execution.context == {"alt": "recovered"}


async def test_a_failure_with_a_null_next_step_override_fails_despite_on_failure() -> None:
    @handler("fail-nowhere")
    async def fail_nowhere(p: HandlerParams) -> StepResult:
        return {"outcome": "failure",  # type: ignore[return-value]  # the original's shape
                "error": {"code": "DECLINED", "message": "no"}, "nextStepOverride": None}

    f = flow("nowhere", step("pay", "fail-nowhere", on_failure="refund"),
             step("refund", "recover", output_key="refund"))
    async with TestHarness(handlers=[fail_nowhere, recover], flows=[f]) as t:
        r = await t.run("nowhere")

        t.assert_failed(r.execution, "DECLINED")
        assert "refund" not in r.execution.context


async def test_a_raising_handler_fails_at_once_with_handler_error_and_no_retry() -> None:
    calls = 0

    @handler("boom")
    async def boom(p: HandlerParams) -> StepResult:
        nonlocal calls
        calls += 1
        raise RuntimeError("database on fire")

    f = flow("boom", step("a", "boom", on_failure="b",
                          retry={"maxAttempts": 3, "backoffMs": 0}),
             step("b", "recover"))
    async with TestHarness(handlers=[boom, recover], flows=[f]) as t:
        r = await t.run("boom")

        t.assert_failed(r.execution, "HANDLER_ERROR")
        assert r.execution.error is not None
        assert "database on fire" in r.execution.error.message
        assert calls == 1
        assert "step.retry" not in types_of(r.events)
        assert "transition" not in types_of(r.events)  # on_failure is not followed


@pytest.mark.parametrize("garbage", [42, {"output": "no outcome"}, None, "done"])
async def test_a_handler_returning_garbage_fails_with_a_clear_message(garbage: object) -> None:
    @handler("garbage")
    async def returns_garbage(p: HandlerParams) -> StepResult:
        return garbage  # type: ignore[return-value]

    f = flow("garbage", step("a", "garbage"))
    async with TestHarness(handlers=[returns_garbage], flows=[f]) as t:
        r = await t.run("garbage")

        t.assert_failed(r.execution, "HANDLER_ERROR")
        assert r.execution.error is not None
        message = r.execution.error.message
        assert type(garbage).__name__ in message
        assert "not a step result" in message


async def test_a_handler_over_its_timeout_times_out_and_is_aborted() -> None:
    seen: list[asyncio.Event] = []

    @handler("slow")
    async def slow(p: HandlerParams) -> StepResult:
        seen.append(p.abort)
        await p.abort.wait()  # a well-behaved handler stops when told to
        return Result.success("too late")

    async with TestHarness(handlers=[slow], flows=[flow("slow", step("a", "slow"))],
                           timeout_ms=30) as t:
        r = await t.run("slow")

        t.assert_failed(r.execution, "HANDLER_TIMEOUT")
        timeout = next(e for e in r.events if e.type == "step.timeout")
        assert timeout.data["step_id"] == "a"
        assert timeout.data["timeout_ms"] == 30
        assert seen
        assert seen[0].is_set()


async def test_a_sleeping_handler_over_its_timeout_is_cut_off() -> None:
    @handler("sleepy")
    async def sleepy(p: HandlerParams) -> StepResult:
        await asyncio.sleep(60)
        return Result.success("never")

    async with TestHarness(handlers=[sleepy], flows=[flow("sleepy", step("a", "sleepy"))],
                           timeout_ms=20) as t:
        r = await t.run("sleepy")

        t.assert_failed(r.execution, "HANDLER_TIMEOUT")
        assert "step.timeout" in types_of(r.events)


def _flaky(failures: int, code: str = "TRANSIENT") -> tuple[FunctionHandler, list[int]]:
    attempts: list[int] = []

    @handler("flaky")
    async def flaky(p: HandlerParams) -> StepResult:
        attempts.append(p.attempt)
        if len(attempts) <= failures:
            return Result.failure(code, f"try {len(attempts)} failed")
        return Result.success({"attempts": len(attempts)})

    return flaky, attempts


async def test_retry_with_backoff_completes_while_the_execution_sees_time_move() -> None:
    flaky, attempts = _flaky(failures=2)
    f = flow("retry", step("a", "flaky", output_key="out",
                           retry={"maxAttempts": 3, "backoffMs": 1000}))
    async with TestHarness(handlers=[flaky], flows=[f]) as t:
        r = await t.run("retry")

        t.assert_completed(r.execution)
        assert r.execution.context["out"] == {"attempts": 3}
        assert attempts == [1, 2, 3]
        starts = [e for e in r.events if e.type == "step.started"]
        assert [e.data["attempt"] for e in starts] == [1, 2, 3]
        # backoff 1000 ms, then 1000 * 2 (the default multiplier)
        gaps = [b.timestamp_ms - a.timestamp_ms for a, b in itertools.pairwise(starts)]
        assert gaps == [1000, 2000]
        retries = [e.data for e in r.events if e.type == "step.retry"]
        assert [(d["attempt"], d["backoff_ms"]) for d in retries] == [(1, 1000), (2, 2000)]


async def test_retries_stop_after_max_attempts_and_fail_with_the_last_code() -> None:
    flaky, attempts = _flaky(failures=10)
    f = flow("retry", step("a", "flaky", retry={"maxAttempts": 2, "backoffMs": 0}))
    async with TestHarness(handlers=[flaky], flows=[f]) as t:
        r = await t.run("retry")

        t.assert_failed(r.execution, "TRANSIENT")
        assert len(attempts) == 3  # the first try and two retries


async def test_retry_on_retries_only_the_listed_codes() -> None:
    flaky, attempts = _flaky(failures=1, code="FATAL")
    f = flow("retry", step("a", "flaky",
                           retry={"maxAttempts": 3, "backoffMs": 10, "retryOn": ["TRANSIENT"]}))
    async with TestHarness(handlers=[flaky], flows=[f]) as t:
        r = await t.run("retry")

        t.assert_failed(r.execution, "FATAL")
        assert attempts == [1]
        assert "step.retry" not in types_of(r.events)


async def test_retry_on_retries_a_listed_code() -> None:
    flaky, attempts = _flaky(failures=1, code="TRANSIENT")
    f = flow("retry", step("a", "flaky",
                           retry={"maxAttempts": 3, "backoffMs": 10, "retryOn": ["TRANSIENT"]}))
    async with TestHarness(handlers=[flaky], flows=[f]) as t:
        r = await t.run("retry")

        t.assert_completed(r.execution)
        assert attempts == [1, 2]


async def test_a_looping_flow_stops_at_max_steps() -> None:
    @handler("spin")
    async def spin(p: HandlerParams) -> StepResult:
        return Result.success()

    f = flow("loop", step("a", "spin", to="b"), step("b", "spin", to="a"))
    async with TestHarness(handlers=[spin], flows=[f], max_steps=7) as t:
        r = await t.run("loop")

        t.assert_failed(r.execution, "MAX_STEPS")
        assert r.execution.step_count == 7
