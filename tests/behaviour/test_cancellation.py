"""Cancellation: waiting executions can be cancelled, finished ones cannot, and a
cancelled parent takes its children with it (FEATURES B6)."""

from __future__ import annotations

import pytest

from flowmonkey import ExecutionStatus, HandlerParams, Result, ResumeTokenError, StepResult, handler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval")


@handler("ok")
async def ok(p: HandlerParams) -> StepResult:
    return Result.success("ok")


SIGNAL = flow("signal", step("s", "approval", to="b"), step("b", "ok"))
PARENT = flow("parent", step("child", "sub-flow", config={"flowId": "signal"},
                             output_key="child", to="b"),
              step("b", "ok"))


async def test_cancelling_a_waiting_execution_cancels_it_and_invalidates_its_token() -> None:
    async with TestHarness(handlers=[approval, ok], flows=[SIGNAL]) as t:
        r = await t.run("signal")

        result = await t.cancel(r.execution.id, reason="customer called")

        assert result.cancelled is True
        assert result.tokens_invalidated == 1
        ex = await t.get(r.execution.id)
        assert ex is not None
        t.assert_cancelled(ex)
        assert ex.cancellation is not None
        assert ex.cancellation.source == "user"
        assert ex.cancellation.reason == "customer called"
        assert types_of(t.events_for(ex.id))[-3:] == [
            "execution.cancelling", "token.revoked", "execution.cancelled"]


async def test_a_cancelled_execution_refuses_to_resume() -> None:
    async with TestHarness(handlers=[approval, ok], flows=[SIGNAL]) as t:
        r = await t.run("signal")
        token = r.execution.resume_token
        assert token is not None
        await t.cancel(r.execution.id)

        with pytest.raises(ResumeTokenError) as info:
            await t.resume(r.execution.id, token, {})

        assert info.value.code == "TOKEN_REVOKED"


async def test_the_cancellation_source_is_recorded() -> None:
    async with TestHarness(handlers=[approval, ok], flows=[SIGNAL]) as t:
        r = await t.run("signal")

        await t.cancel(r.execution.id, source="system")

        ex = await t.get(r.execution.id)
        assert ex is not None
        assert ex.cancellation is not None
        assert ex.cancellation.source == "system"


async def test_cancelling_a_completed_execution_changes_nothing_and_says_why() -> None:
    async with TestHarness(handlers=[ok], flows=[flow("plain", step("a", "ok"))]) as t:
        r = await t.run("plain")

        result = await t.cancel(r.execution.id)

        assert result.cancelled is False
        assert result.reason is not None
        assert "completed" in result.reason
        ex = await t.get(r.execution.id)
        assert ex is not None
        t.assert_completed(ex)


async def test_cancelling_an_unknown_execution_says_it_was_not_found() -> None:
    async with TestHarness(handlers=[ok], flows=[flow("plain", step("a", "ok"))]) as t:
        result = await t.cancel("no-such-execution")

        assert result.cancelled is False
        assert result.reason is not None
        assert "not found" in result.reason


async def test_cancelling_a_parent_cascades_to_its_waiting_child() -> None:
    async with TestHarness(handlers=[approval, ok], flows=[SIGNAL, PARENT]) as t:
        r = await t.run("parent")
        assert r.execution.status == ExecutionStatus.WAITING
        children = (await t.engine.list(parent_execution_id=r.execution.id)).items
        assert len(children) == 1
        child = children[0]
        assert child.status == ExecutionStatus.WAITING

        result = await t.cancel(r.execution.id)

        assert result.cancelled is True
        assert result.children_cancelled == 1
        parent = await t.get(r.execution.id)
        child_now = await t.get(child.id)
        assert parent is not None
        assert child_now is not None
        t.assert_cancelled(parent)
        t.assert_cancelled(child_now)
        assert child_now.cancellation is not None
        assert child_now.cancellation.source == "parent"
