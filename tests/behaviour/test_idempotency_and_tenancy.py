"""Idempotency keys (FEATURES B2) and tenant isolation (B3)."""

from __future__ import annotations

import pytest

from flowmonkey import ExecutionNotFoundError, HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval")


@handler("ok")
async def ok(p: HandlerParams) -> StepResult:
    return Result.success("ok")


ORDER = flow("order", step("a", "ok", output_key="a"))
SIGNAL = flow("signal", step("s", "approval"))
HANDLERS = [approval, ok]


async def test_the_same_idempotency_key_twice_returns_the_same_execution() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[ORDER]) as t:
        first = await t.create("order", {"n": 1}, idempotency_key="order-42")
        second = await t.create("order", {"n": 2}, idempotency_key="order-42")

        assert first.created is True
        assert first.idempotency_hit is False
        assert second.created is False
        assert second.idempotency_hit is True
        assert second.execution.id == first.execution.id
        assert second.execution.context["n"] == 1
        assert len((await t.engine.list()).items) == 1


async def test_an_idempotency_hit_is_announced_by_an_event() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[ORDER]) as t:
        first = await t.create("order", idempotency_key="order-42")
        await t.create("order", idempotency_key="order-42")

        hits = [e for e in t.events_for(first.execution.id) if e.type == "idempotency.hit"]
        assert len(hits) == 1
        assert hits[0].data["idempotency_key"] == "order-42"
        assert hits[0].data["flow_id"] == "order"


async def test_the_same_key_in_another_tenant_starts_another_execution() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[ORDER]) as t:
        a = await t.create("order", idempotency_key="k", tenant_id="tenant-a")
        b = await t.create("order", idempotency_key="k", tenant_id="tenant-b")

        assert b.created is True
        assert b.execution.id != a.execution.id


async def test_the_same_key_after_the_window_starts_a_new_execution() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[ORDER]) as t:
        first = await t.create("order", idempotency_key="k", idempotency_window_ms=60_000)
        await t.advance(59_999)
        inside = await t.create("order", idempotency_key="k", idempotency_window_ms=60_000)
        await t.advance(1)

        after = await t.create("order", idempotency_key="k", idempotency_window_ms=60_000)

        assert inside.idempotency_hit is True
        assert after.created is True
        assert after.idempotency_hit is False
        assert after.execution.id != first.execution.id


async def test_an_idempotency_hit_returns_a_finished_execution_as_it_is() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[ORDER]) as t:
        first = await t.run("order", idempotency_key="k")
        again = await t.create("order", idempotency_key="k")

        assert again.execution.id == first.execution.id
        t.assert_completed(again.execution)
        assert again.execution.step_count == 1  # nothing ran again
        assert types_of(t.events_for(first.execution.id))[-2:] == [
            "execution.completed", "idempotency.hit"]


async def test_another_tenant_cannot_see_an_execution() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[SIGNAL]) as t:
        r = await t.run("signal", tenant_id="tenant-a")
        engine = t.engine

        assert await engine.get(r.execution.id, tenant_id="tenant-b") is None
        assert (await engine.list(tenant_id="tenant-b")).items == []
        assert await engine.history(r.execution.id, tenant_id="tenant-b") == []
        assert (await engine.get(r.execution.id, tenant_id="tenant-a")) is not None
        assert [e.id for e in (await engine.list(tenant_id="tenant-a")).items] == \
            [r.execution.id]
        assert await engine.history(r.execution.id, tenant_id="tenant-a")


async def test_every_event_carries_the_executions_tenant() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[SIGNAL]) as t:
        r = await t.run("signal", tenant_id="tenant-a")

        assert r.execution.tenant_id == "tenant-a"
        assert {e.tenant_id for e in r.events} == {"tenant-a"}


async def test_another_tenant_cannot_cancel_an_execution() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[SIGNAL]) as t:
        r = await t.run("signal", tenant_id="tenant-a")

        result = await t.engine.cancel(r.execution.id, tenant_id="tenant-b")

        assert result.cancelled is False
        assert result.reason is not None
        assert "not found" in result.reason
        ex = await t.get(r.execution.id)
        assert ex is not None
        assert ex.status == "waiting"


async def test_another_tenant_cannot_resume_an_execution() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[SIGNAL]) as t:
        r = await t.run("signal", tenant_id="tenant-a")
        assert r.execution.resume_token is not None

        with pytest.raises(ExecutionNotFoundError):
            await t.engine.resume(r.execution.id, r.execution.resume_token, {},
                                  tenant_id="tenant-b")

        ex = await t.get(r.execution.id)
        assert ex is not None
        assert ex.status == "waiting"
