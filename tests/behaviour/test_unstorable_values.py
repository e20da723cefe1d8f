"""A value the log cannot carry, given to the engine from Python (not through the HTTP
API, which refuses it earlier), is the caller's error: ``UnstorableValueError`` names
its path, nothing is sent, and the engine goes on. It used to leak orjson's
``TypeError`` from ``Engine.create``."""

from __future__ import annotations

import pytest

from flowmonkey import Engine, ExecutionStatus, HandlerParams, Result, StepResult, handler
from flowmonkey.errors import UnstorableValueError
from tests.behaviour.flows import flow, key, step


@handler("echo")
async def echo(p: HandlerParams) -> StepResult:
    return Result.success(p.input)


@handler("nap")
async def nap(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("an approval")


FLOWS = [flow("fine", step("a", "echo", input=key("x"), output_key="a")),
         flow("napping", step("nap", "nap", to="a"),
              step("a", "echo", input=key("x"), output_key="a"))]


@pytest.mark.parametrize(("context", "field"), [
    ({"x": "\ud800"}, "context.x"),
    ({"x": {"\udfff": 1}}, "context.x.\\udfff"),
    ({"x": [1, "a\ud800"]}, "context.x[1]"),
    ({"x": 2**70}, "context.x"),
])
async def test_a_create_with_a_value_the_log_cannot_carry_names_its_field(
        context: dict[str, object], field: str) -> None:
    async with Engine(flows=FLOWS, handlers=[echo, nap]) as engine:
        with pytest.raises(UnstorableValueError) as refused:
            await engine.create("fine", context)

        assert refused.value.code == "VALIDATION_ERROR"
        assert refused.value.field == field
        assert (await engine.list()).items == []  # nothing was started
        fine = await engine.create("fine", {"x": 1})
        assert (await engine.wait(fine.execution.id, timeout_s=10)).status == \
            ExecutionStatus.COMPLETED


async def test_a_resume_with_a_value_the_log_cannot_carry_leaves_the_wait_usable() -> None:
    async with Engine(flows=FLOWS, handlers=[echo, nap]) as engine:
        created = await engine.create("napping", {"x": 1})
        waiting = await engine.wait(created.execution.id, until={ExecutionStatus.WAITING},
                                    timeout_s=10)
        token = waiting.resume_token
        assert token is not None

        with pytest.raises(UnstorableValueError) as refused:
            await engine.resume(created.execution.id, token, {"note": "\ud800"})
        assert refused.value.field == "data.note"

        await engine.resume(created.execution.id, token, {"note": "fine"})
        done = await engine.wait(created.execution.id, timeout_s=10)
        assert done.status == ExecutionStatus.COMPLETED


@handler("boom")
async def boom(p: HandlerParams) -> StepResult:
    # an exception's text is the handler's: any characters, any size
    raise ValueError("bad input \ud800" + "x" * 1_000_000)


async def test_a_handler_error_the_log_cannot_carry_as_is_fails_the_step_as_its_own() -> None:
    async with Engine(flows=[flow("raising", step("a", "boom"))], handlers=[boom]) as engine:
        created = await engine.create("raising", {})
        done = await engine.wait(created.execution.id, timeout_s=10)

        assert done.status == ExecutionStatus.FAILED
        assert done.error is not None
        assert done.error.code == "HANDLER_ERROR"  # the handler's failure, not INTERNAL_ERROR
        assert done.error.message.startswith("bad input \\ud800xxx")
        assert len(done.error.message) < 3_000
        assert engine.processor_failure() is None
