"""Cancellation: waiting executions can be cancelled, finished ones cannot, and a
cancelled parent takes its children with it (FEATURES B6)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import (
    Engine,
    ExecutionStatus,
    HandlerParams,
    Result,
    ResumeTokenError,
    StepResult,
    handler,
)
from flowmonkey.log import EmbeddedLog
from flowmonkey.log.partitioner import partition_for
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of
from tests.unit.api_support import eventually


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


def _ids_on_every_partition(prefix: str, partitions: int, per_partition: int) -> list[str]:
    """``per_partition`` ids on each of the ``partitions`` (so some differ from any
    parent's partition, whichever it is)."""
    found: dict[int, list[str]] = {p: [] for p in range(partitions)}
    i = 0
    while any(len(ids) < per_partition for ids in found.values()):
        candidate = f"{prefix}-{i}"
        i += 1
        ids = found[partition_for(candidate.encode(), partitions)]
        if len(ids) < per_partition:
            ids.append(candidate)
    return [c for ids in found.values() for c in ids]


async def _status(engine: Engine, execution_id: str, status: ExecutionStatus) -> Any:
    async def reached() -> Any:
        ex = await engine.get(execution_id)
        return ex if ex is not None and ex.status == status else None
    return await eventually(reached, what=f"{execution_id} to be {status.value}")


async def test_cancelling_a_parent_cancels_children_created_with_its_id_on_any_partition(
) -> None:
    partitions = 4
    async with Engine(flows=[SIGNAL], handlers=[approval, ok],
                      log=EmbeddedLog(partitions=partitions)) as engine:
        parent = (await engine.create("signal", execution_id="the-parent")).execution
        children = _ids_on_every_partition("attached", partitions, 2)
        assert {partition_for(c.encode(), partitions) for c in children} != \
            {partition_for(parent.id.encode(), partitions)}
        for child_id in children:
            await engine.create("signal", parent_execution_id=parent.id,
                                execution_id=child_id)
        for child_id in children:
            await _status(engine, child_id, ExecutionStatus.WAITING)

        async def all_attached() -> bool:
            ex = await engine.get(parent.id)
            return ex is not None and sorted(ex.children) == sorted(children)
        await eventually(all_attached, what="every child to register with its parent")

        result = await engine.cancel(parent.id)

        assert result.cancelled is True
        assert result.children_cancelled == len(children)
        for child_id in children:
            child = await _status(engine, child_id, ExecutionStatus.CANCELLED)
            assert child.cancellation is not None
            assert child.cancellation.source == "parent"
        assert engine.processor_failure() is None


async def test_a_child_created_for_a_cancelled_parent_is_cancelled_at_once() -> None:
    async with Engine(flows=[SIGNAL], handlers=[approval, ok],
                      log=EmbeddedLog(partitions=4)) as engine:
        parent = (await engine.create("signal")).execution
        await _status(engine, parent.id, ExecutionStatus.WAITING)
        await engine.cancel(parent.id)

        child = (await engine.create("signal", parent_execution_id=parent.id)).execution

        cancelled = await _status(engine, child.id, ExecutionStatus.CANCELLED)
        assert cancelled.cancellation is not None
        assert cancelled.cancellation.source == "parent"


async def test_a_child_of_a_completed_parent_runs_on() -> None:
    plain = flow("plain", step("a", "ok"))
    async with TestHarness(handlers=[approval, ok], flows=[SIGNAL, plain]) as t:
        parent = await t.run("plain")
        assert parent.execution.status == ExecutionStatus.COMPLETED

        child = await t.run("signal", parent_execution_id=parent.execution.id)

        assert child.execution.status == ExecutionStatus.WAITING
        assert child.execution.parent_execution_id == parent.execution.id
