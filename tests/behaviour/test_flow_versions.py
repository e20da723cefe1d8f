"""Flow versions: several coexist, the highest published one runs by default, an
execution pins its version, and drafts run only when asked for (FEATURES A1)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import CommandRejected, HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step


@handler("version")
async def version(p: HandlerParams) -> StepResult:
    return Result.success(p.execution.flow_version)


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal()


def versioned(v: str, **extra: Any) -> dict[str, Any]:
    return {**flow("f", step("a", "version", output_key="ran"), version=v), **extra}


async def test_without_a_version_the_highest_published_version_runs() -> None:
    flows = [versioned("1.9.0"), versioned("1.10.0"), versioned("2.0.0", status="draft")]
    async with TestHarness(handlers=[version], flows=flows) as t:
        r = await t.run("f")

        assert r.execution.flow_version == "1.10.0"  # numeric, not lexicographic
        assert r.execution.context["ran"] == "1.10.0"


async def test_an_explicit_version_runs_that_version() -> None:
    async with TestHarness(handlers=[version],
                           flows=[versioned("1.0.0"), versioned("2.0.0")]) as t:
        r = await t.run("f", flow_version="1.0.0")

        assert r.execution.context["ran"] == "1.0.0"


async def test_a_draft_flow_is_refused_unless_asked_for_explicitly() -> None:
    async with TestHarness(handlers=[version], flows=[versioned("1.0.0", status="draft")]) as t:
        with pytest.raises(CommandRejected) as info:
            await t.create("f")
        assert info.value.code == "FLOW_NOT_PUBLISHED"

        r = await t.run("f", allow_unpublished=True)

        t.assert_completed(r.execution)
        assert r.execution.flow_version == "1.0.0"


async def test_an_archived_flow_is_refused() -> None:
    async with TestHarness(handlers=[version],
                           flows=[versioned("1.0.0", status="archived")]) as t:
        with pytest.raises(CommandRejected) as info:
            await t.create("f")

        assert info.value.code == "FLOW_NOT_PUBLISHED"


async def test_an_execution_keeps_its_version_when_a_newer_one_is_registered() -> None:
    v1 = flow("f", step("wait", "approval", to="a"), step("a", "version", output_key="ran"))
    async with TestHarness(handlers=[version, approval], flows=[v1]) as t:
        r = await t.run("f")
        assert r.execution.resume_token is not None
        t.engine.register_flow(flow("f", step("a", "version", output_key="ran"),
                                    version="2.0.0"))

        done = await t.resume(r.execution.id, r.execution.resume_token, None)

        t.assert_completed(done)
        assert done.flow_version == "1.0.0"
        assert done.context["ran"] == "1.0.0"
        fresh = await t.run("f")
        assert fresh.execution.flow_version == "2.0.0"
