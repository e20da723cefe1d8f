"""Context limits are enforced on every write: helper writes, step outputs and resume
data (FEATURES A7, A8)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import (
    CommandRejected,
    ContextLimits,
    EngineOptions,
    HandlerParams,
    Result,
    StepResult,
    handler,
)
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step

LIMITS = ContextLimits(max_size_bytes=200, max_total_size_bytes=400, max_depth=3, max_keys=5)
OPTIONS = EngineOptions(record_history=True, max_steps=100, context_limits=LIMITS)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"d": value}
    return value


WRITES: dict[str, Any] = {
    "CONTEXT_VALUE_TOO_LARGE": [("big", "x" * 500)],
    "CONTEXT_NESTING_LIMIT": [("deep", _nested(4))],
    "CONTEXT_KEY_LIMIT": [(f"k{i}", i) for i in range(6)],
    "CONTEXT_SIZE_LIMIT": [(f"part{i}", "y" * 150) for i in range(3)],
}


@pytest.mark.parametrize("code", list(WRITES))
async def test_a_helper_write_over_a_limit_fails_with_its_code(code: str) -> None:
    @handler("writer")
    async def writer(p: HandlerParams) -> StepResult:
        for path, value in WRITES[code]:
            p.helpers.set(path, value)
        return Result.success()

    async with TestHarness(handlers=[writer], flows=[flow("w", step("a", "writer"))],
                           options=OPTIONS) as t:
        r = await t.run("w")

        t.assert_failed(r.execution, code)


@pytest.mark.parametrize("code", ["CONTEXT_VALUE_TOO_LARGE", "CONTEXT_NESTING_LIMIT"])
async def test_an_output_over_a_limit_fails_with_its_code(code: str) -> None:
    output = WRITES[code][0][1]

    @handler("producer")
    async def producer(p: HandlerParams) -> StepResult:
        return Result.success(output)

    f = flow("o", step("a", "producer", output_key="out"))
    async with TestHarness(handlers=[producer], flows=[f], options=OPTIONS) as t:
        r = await t.run("o")

        t.assert_failed(r.execution, code)
        assert "out" not in r.execution.context


async def test_a_helper_merge_over_the_key_limit_fails_with_context_key_limit() -> None:
    @handler("merger")
    async def merger(p: HandlerParams) -> StepResult:
        p.helpers.merge({f"k{i}": i for i in range(10)})
        return Result.success()

    async with TestHarness(handlers=[merger], flows=[flow("m", step("a", "merger"))],
                           options=OPTIONS) as t:
        r = await t.run("m")

        t.assert_failed(r.execution, "CONTEXT_KEY_LIMIT")


async def test_helper_writes_within_the_limits_reach_the_context() -> None:
    @handler("writer")
    async def writer(p: HandlerParams) -> StepResult:
        p.helpers.set("profile.name", "Ada")
        p.helpers.merge({"seen": True})
        assert p.helpers.get("profile.name") == "Ada"
        assert p.helpers.get_safe("profile.age", 0) == 0
        return Result.success()

    async with TestHarness(handlers=[writer], flows=[flow("w", step("a", "writer"))],
                           options=OPTIONS) as t:
        r = await t.run("w")

        t.assert_completed(r.execution)
        t.assert_context(r.execution, {"profile": {"name": "Ada"}, "seen": True})


async def test_resume_data_over_a_limit_is_refused_and_the_execution_keeps_waiting() -> None:
    @handler("approval")
    async def approval(p: HandlerParams) -> StepResult:
        return Result.wait_for_signal()

    f = flow("s", step("s", "approval", output_key="answer"))
    async with TestHarness(handlers=[approval], flows=[f], options=OPTIONS) as t:
        r = await t.run("s")
        assert r.execution.resume_token is not None

        with pytest.raises(CommandRejected) as info:
            await t.resume(r.execution.id, r.execution.resume_token, "z" * 500)

        assert info.value.code == "CONTEXT_VALUE_TOO_LARGE"
        ex = await t.get(r.execution.id)
        assert ex is not None
        assert ex.status == "waiting"


async def test_a_start_context_over_a_limit_is_refused() -> None:
    @handler("noop")
    async def noop(p: HandlerParams) -> StepResult:
        return Result.success()

    async with TestHarness(handlers=[noop], flows=[flow("n", step("a", "noop"))],
                           options=OPTIONS) as t:
        with pytest.raises(CommandRejected) as info:
            await t.create("n", {"deep": _nested(4)})

        assert info.value.code == "CONTEXT_NESTING_LIMIT"
        assert (await t.engine.list()).items == []


async def test_an_output_that_is_not_json_fails_with_invalid_value() -> None:
    @handler("setter")
    async def setter(p: HandlerParams) -> StepResult:
        return Result.success({1, 2, 3})

    f = flow("j", step("a", "setter", output_key="out"))
    async with TestHarness(handlers=[setter], flows=[f]) as t:
        r = await t.run("j")

        t.assert_failed(r.execution, "INVALID_VALUE")
        assert r.execution.error is not None
        assert "JSON" in r.execution.error.message
