"""Waiting: timed waits, signals with resume tokens, and timeouts (FEATURES A5, B5, B7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowmonkey import (
    ExecutionNotFoundError,
    ExecutionStatus,
    HandlerParams,
    Result,
    ResumeTokenError,
    StepResult,
    handler,
)
from flowmonkey.errors import CommandRejected
from flowmonkey.handlers import builtin
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of


@handler("nap")
async def nap(p: HandlerParams) -> StepResult:
    return Result.wait(5000, "nap", output={"napped": True})


@handler("until-noon")
async def until_later(p: HandlerParams) -> StepResult:
    return Result.wait_until(p.execution.updated_at + timedelta(hours=2), "later")


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("manager approval")


@handler("after")
async def after(p: HandlerParams) -> StepResult:
    return Result.success("after")


def _gap(events: list[Any], first: str, second: str) -> int:
    a = next(e for e in events if e.type == first)
    b = next(e for e in events if e.type == second)
    return int(b.timestamp_ms - a.timestamp_ms)


async def test_a_timed_wait_completes_at_once_but_time_moves_by_exactly_the_wait() -> None:
    f = flow("nap", step("n", "nap", output_key="nap", to="b"),
             step("b", "after", output_key="b"))
    async with TestHarness(handlers=[nap, after], flows=[f]) as t:
        before = t.clock.now_ms()
        r = await t.run("nap")

        t.assert_completed(r.execution)
        assert _gap(r.events, "execution.waiting", "execution.resumed") == 5000
        assert t.clock.now_ms() - before == 5000
        assert r.execution.context["nap"] == {"napped": True}


async def test_a_timed_wait_rests_in_waiting_until_its_time_comes() -> None:
    f = flow("nap", step("n", "nap", to="b"), step("b", "after", output_key="b"))
    async with TestHarness(handlers=[nap, after], flows=[f]) as t:
        created = await t.create("nap")
        waiting = await t.get(created.execution.id)
        assert waiting is not None
        assert waiting.status == ExecutionStatus.WAITING
        assert waiting.wake_at is not None

        await t.advance(4999)
        still = await t.get(created.execution.id)
        assert still is not None
        assert still.status == ExecutionStatus.WAITING

        await t.advance(1)
        done = await t.get(created.execution.id)
        assert done is not None
        t.assert_completed(done)


async def test_wait_until_wakes_at_the_given_time() -> None:
    f = flow("until", step("u", "until-noon", to="b"), step("b", "after"))
    async with TestHarness(handlers=[until_later, after], flows=[f]) as t:
        r = await t.run("until")

        t.assert_completed(r.execution)
        assert _gap(r.events, "execution.waiting", "execution.resumed") == 2 * 3600 * 1000


async def test_the_delay_builtin_waits_and_stores_how_long() -> None:
    f = flow("delay", step("d", "delay", config={"seconds": 2, "ms": 500}, output_key="delay",
                           to="b"),
             step("b", "after"))
    async with TestHarness(handlers=[*builtin(), after], flows=[f]) as t:
        r = await t.run("delay")

        t.assert_completed(r.execution)
        assert r.execution.context["delay"] == {"delayedMs": 2500}
        assert _gap(r.events, "execution.waiting", "execution.resumed") == 2500


SIGNAL = flow("signal", step("s", "approval", output_key="approval", to="b"),
              step("b", "after", output_key="b"))
SIGNAL_MERGE = flow("signal-merge", step("s", "approval", to="b"), step("b", "after"))


async def test_a_signal_wait_rests_waiting_with_a_resume_token() -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL]) as t:
        r = await t.run("signal")

        assert r.execution.status == ExecutionStatus.WAITING
        assert r.execution.resume_token
        assert r.execution.wait_reason == "manager approval"
        assert types_of(r.events)[-2:] == ["execution.waiting", "token.created"]


async def test_resume_stores_the_data_at_the_output_key_and_goes_on() -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL]) as t:
        r = await t.run("signal", {"order": 1})
        assert r.execution.resume_token is not None

        done = await t.resume(r.execution.id, r.execution.resume_token, {"ok": True})

        t.assert_completed(done)
        assert done.context == {"order": 1, "approval": {"ok": True}, "b": "after"}
        assert done.resume_token is None


async def test_resume_merges_the_data_into_the_context_when_the_step_has_no_output_key(
) -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL_MERGE]) as t:
        r = await t.run("signal-merge", {"order": 1})
        assert r.execution.resume_token is not None

        done = await t.resume(r.execution.id, r.execution.resume_token,
                              {"approved_by": "kim", "order": 2})

        t.assert_completed(done)
        assert done.context == {"order": 2, "approved_by": "kim"}


async def test_resume_continues_at_on_resume_when_given() -> None:
    f = flow("resume-to", step("s", "approval", to="b", on_resume="c"),
             step("b", "after", output_key="b"), step("c", "after", output_key="c"))
    async with TestHarness(handlers=[approval, after], flows=[f]) as t:
        r = await t.run("resume-to")
        assert r.execution.resume_token is not None

        done = await t.resume(r.execution.id, r.execution.resume_token, None)

        t.assert_completed(done)
        assert "c" in done.context
        assert "b" not in done.context


async def test_resume_with_a_wrong_token_is_refused_as_invalid() -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL]) as t:
        r = await t.run("signal")

        with pytest.raises(ResumeTokenError) as info:
            await t.resume(r.execution.id, "not-the-token", {})

        assert info.value.code == "INVALID_TOKEN"
        still = await t.get(r.execution.id)
        assert still is not None
        assert still.status == ExecutionStatus.WAITING


async def test_a_resume_token_works_only_once() -> None:
    f = flow("two-waits", step("s", "approval", output_key="first", to="s2"),
             step("s2", "approval", output_key="second"))
    async with TestHarness(handlers=[approval], flows=[f]) as t:
        r = await t.run("two-waits")
        first_token = r.execution.resume_token
        assert first_token is not None
        again = await t.resume(r.execution.id, first_token, 1)
        assert again.status == ExecutionStatus.WAITING  # now at the second wait

        with pytest.raises(ResumeTokenError) as info:
            await t.resume(r.execution.id, first_token, 2)

        assert info.value.code == "TOKEN_USED"


async def test_a_revoked_token_is_refused() -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL]) as t:
        r = await t.run("signal")
        token = r.execution.resume_token
        assert token is not None
        await t.engine.revoke_token(r.execution.id, token, "changed our mind")

        with pytest.raises(ResumeTokenError) as info:
            await t.resume(r.execution.id, token, {})

        assert info.value.code == "TOKEN_REVOKED"


async def test_revoking_the_waits_token_leaves_it_waiting_until_its_timeout_fires() -> None:
    @handler("timed-approval")
    async def timed(p: HandlerParams) -> StepResult:
        return Result.wait_for_signal("approval", timeout_ms=60_000)

    f = flow("timed", step("s", "timed-approval", to="b"), step("b", "after"))
    async with TestHarness(handlers=[timed, after], flows=[f]) as t:
        r = await t.run("timed")
        token = r.execution.resume_token
        assert token is not None
        await t.engine.revoke_token(r.execution.id, token, "changed our mind")

        with pytest.raises(ResumeTokenError) as info:
            await t.resume(r.execution.id, token, {})
        assert info.value.code == "TOKEN_REVOKED"
        assert "still waiting" in info.value.message
        await t.advance(59_999)
        ex = await t.get(r.execution.id)
        assert ex is not None
        assert ex.status == ExecutionStatus.WAITING

        await t.advance(1)

        ex = await t.get(r.execution.id)
        assert ex is not None
        t.assert_cancelled(ex)
        assert ex.cancellation is not None
        assert ex.cancellation.source == "timeout"


async def test_an_execution_whose_waits_token_was_revoked_can_still_be_cancelled() -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL]) as t:
        r = await t.run("signal")
        assert r.execution.resume_token is not None
        await t.engine.revoke_token(r.execution.id, r.execution.resume_token)

        cancelled = await t.cancel(r.execution.id, reason="nobody can approve it now")

        assert cancelled.cancelled
        ex = await t.get(r.execution.id)
        assert ex is not None
        t.assert_cancelled(ex)


async def test_resuming_an_execution_that_is_not_waiting_is_refused() -> None:
    async with TestHarness(handlers=[after], flows=[flow("plain", step("a", "after"))]) as t:
        r = await t.run("plain")

        with pytest.raises(CommandRejected):
            await t.resume(r.execution.id, "any-token", {})


async def test_resuming_an_unknown_execution_is_refused_as_not_found() -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL]) as t:
        with pytest.raises(ExecutionNotFoundError):
            await t.resume("no-such-execution", "token", {})


@handler("short-approval")
async def short_approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval", timeout_ms=60_000)


SHORT = flow("short", step("s", "short-approval"))


async def test_a_signal_timeout_cancels_the_execution_with_source_timeout() -> None:
    async with TestHarness(handlers=[short_approval], flows=[SHORT]) as t:
        r = await t.run("short")
        token = r.execution.resume_token
        assert token is not None

        await t.advance(60_000)

        ex = await t.get(r.execution.id)
        assert ex is not None
        t.assert_cancelled(ex)
        assert ex.cancellation is not None
        assert ex.cancellation.source == "timeout"
        with pytest.raises(ResumeTokenError):
            await t.resume(r.execution.id, token, {})


async def test_resuming_after_the_signal_timeout_is_refused_as_expired() -> None:
    async with TestHarness(handlers=[short_approval], flows=[SHORT]) as t:
        r = await t.run("short")
        token = r.execution.resume_token
        assert token is not None

        await t.advance(60_000)

        with pytest.raises(ResumeTokenError) as info:
            await t.resume(r.execution.id, token, {})
        assert info.value.code == "TOKEN_EXPIRED"
        history = [e for e in types_of(t.events_for(r.execution.id))
                   if e != "command.rejected"]
        assert history[-3:] == ["tokens.cleaned", "execution.cancelling",
                                "execution.cancelled"]


async def test_a_wait_timeout_cancels_a_waiting_execution_with_source_timeout() -> None:
    async with TestHarness(handlers=[approval, after], flows=[SIGNAL]) as t:
        created = await t.create("signal", timeout={"wait_timeout_ms": 10_000})

        await t.advance(9_999)
        ex = await t.get(created.execution.id)
        assert ex is not None
        assert ex.status == ExecutionStatus.WAITING

        await t.advance(1)
        ex = await t.get(created.execution.id)
        assert ex is not None
        t.assert_cancelled(ex)
        assert ex.cancellation is not None
        assert ex.cancellation.source == "timeout"


async def test_an_execution_timeout_cancels_the_execution_with_source_timeout() -> None:
    f = flow("long-nap", step("n", "nap", to="n2"), step("n2", "nap", to="b"),
             step("b", "after"))
    async with TestHarness(handlers=[nap, after], flows=[f]) as t:
        created = await t.create("long-nap", timeout={"execution_timeout_ms": 7_000})

        await t.advance(7_000)

        ex = await t.get(created.execution.id)
        assert ex is not None
        t.assert_cancelled(ex)
        assert ex.cancellation is not None
        assert ex.cancellation.source == "timeout"
        assert ex.current_step_id == "n2"  # the first nap ended, the second never did
