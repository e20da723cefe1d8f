"""The built-in handlers come with every engine and harness (issue 11, item 4)."""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.errors import FlowValidationError, RegistrationError
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, key, step

NAP_THEN_DOUBLE = flow(
    "nap-double",
    step("d", "delay", config={"ms": 5}, to="t"),
    step("t", "transform", config={"expression": "input * 2"}, input=key("x"),
         output_key="doubled"))


async def test_an_engine_runs_delay_and_transform_without_being_given_handlers() -> None:
    async with Engine(flows=[NAP_THEN_DOUBLE]) as engine:
        created = await engine.create("nap-double", {"x": 21})
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # wait() returns at the delay's wait too: poll until it ends
            done = await engine.wait(created.execution.id, timeout_s=10)
            if done.status.is_terminal or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.005)

    assert done.status == ExecutionStatus.COMPLETED, done.error
    assert done.context["doubled"] == {"result": 42}


async def test_a_harness_runs_them_without_being_given_handlers() -> None:
    async with TestHarness(flows=[NAP_THEN_DOUBLE]) as t:
        r = await t.run("nap-double", {"x": 4})

    t.assert_completed(r.execution)
    t.assert_context(r.execution, {"doubled": {"result": 8}})


async def test_a_handler_of_the_users_replaces_the_built_in_of_its_type() -> None:
    @handler("transform")
    async def constant(p: HandlerParams) -> StepResult:
        return Result.success("mine")

    async with TestHarness(handlers=[constant], flows=[NAP_THEN_DOUBLE]) as t:
        r = await t.run("nap-double", {"x": 4})

    t.assert_context(r.execution, {"doubled": "mine"})


def test_two_handlers_of_the_users_with_one_type_are_still_refused() -> None:
    @handler("transform")
    async def one(p: HandlerParams) -> StepResult:
        return Result.success(1)

    @handler("transform")
    async def two(p: HandlerParams) -> StepResult:
        return Result.success(2)

    with pytest.raises(RegistrationError, match="'transform' is already registered"):
        Engine(handlers=[one, two])


def test_builtin_handlers_false_leaves_them_out_with_a_message_for_python() -> None:
    with pytest.raises(FlowValidationError) as caught:
        Engine(flows=[NAP_THEN_DOUBLE], builtin_handlers=False)

    message = str(caught.value)
    assert "unknown handler type 'delay'" in message
    assert "Engine(handlers=[...])" in message
    assert "builtin_handlers=False" in message
    assert "--handlers" not in message
    assert "sub-flow" in Engine(builtin_handlers=False).handlers


def test_an_unknown_type_in_python_names_the_engines_handlers_argument() -> None:
    with pytest.raises(FlowValidationError) as caught:
        Engine(flows=[flow("odd", step("z", "zzz-unknown"))])

    message = str(caught.value)
    assert "the known types are batch-process, conditional, delay" in message
    assert "Engine(handlers=[...])" in message
    assert "--handlers" not in message
