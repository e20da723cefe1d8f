"""Flows and steps: a flow runs its steps in order, storing outputs and following
transitions (FEATURES A3–A5)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.handlers import builtin
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, key, step, types_of


@handler("double")
async def double(p: HandlerParams) -> StepResult:
    return Result.success({"v": p.input * 2})


@handler("add-one")
async def add_one(p: HandlerParams) -> StepResult:
    return Result.success(p.input["v"] + 1)


@handler("echo")
async def echo(p: HandlerParams) -> StepResult:
    return Result.success(p.input)


@handler("mark")
async def mark(p: HandlerParams) -> StepResult:
    return Result.success(p.step.id)


LINEAR = flow(
    "linear",
    step("double", "double", input=key("x"), output_key="doubled", to="inc"),
    step("inc", "add-one", input=key("doubled"), output_key="result"),
)


async def test_a_linear_flow_runs_every_step_and_completes() -> None:
    async with TestHarness(handlers=[double, add_one], flows=[LINEAR]) as t:
        r = await t.run("linear", {"x": 20})

        t.assert_completed(r.execution)
        assert r.execution.step_count == 2
        assert r.execution.current_step_id == "inc"


async def test_each_step_output_is_stored_at_its_output_key() -> None:
    async with TestHarness(handlers=[double, add_one], flows=[LINEAR]) as t:
        r = await t.run("linear", {"x": 20})

        assert r.execution.context == {"x": 20, "doubled": {"v": 40}, "result": 41}


async def test_a_step_without_output_key_leaves_the_context_unchanged() -> None:
    f = flow("no-key", step("a", "echo", input={"type": "static", "value": "ignored"}))
    async with TestHarness(handlers=[echo], flows=[f]) as t:
        r = await t.run("no-key", {"x": 1})

        t.assert_completed(r.execution)
        assert r.execution.context == {"x": 1}


async def test_a_dotted_output_key_creates_nested_objects() -> None:
    f = flow("nested", step("a", "echo", input=key("x"), output_key="out.deep.value"))
    async with TestHarness(handlers=[echo], flows=[f]) as t:
        r = await t.run("nested", {"x": 7})

        assert r.execution.context["out"] == {"deep": {"value": 7}}


CONTEXT: dict[str, Any] = {
    "name": "Ada",
    "count": 3,
    "user": {"profile": {"email": "ada@example.com"}, "tags": ["a", "b"]},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param({"type": "key", "key": "name"}, "Ada", id="key"),
        pytest.param({"type": "key", "key": "absent"}, None, id="key-missing-is-none"),
        pytest.param({"type": "keys", "keys": ["name", "count", "absent"]},
                     {"name": "Ada", "count": 3}, id="keys-skips-missing"),
        pytest.param({"type": "path", "path": "user.profile.email"}, "ada@example.com",
                     id="path"),
        pytest.param({"type": "path", "path": "user.nope.email"}, None, id="path-missing"),
        pytest.param({"type": "template", "template": "Hi ${name}, you have ${count}"},
                     "Hi Ada, you have 3", id="template-string"),
        pytest.param({"type": "template", "template": "${count}"}, 3,
                     id="template-single-placeholder-keeps-type"),
        pytest.param({"type": "template", "template": "${user.tags}"}, ["a", "b"],
                     id="template-single-placeholder-list"),
        pytest.param({"type": "template", "template": "[${missing}]"}, "[]",
                     id="template-missing-inside-string-is-empty"),
        pytest.param({"type": "template",
                      "template": {"to": "${user.profile.email}", "n": ["${count}"]}},
                     {"to": "ada@example.com", "n": [3]}, id="template-nested"),
        pytest.param({"type": "full"}, CONTEXT, id="full"),
        pytest.param({"type": "static", "value": {"fixed": [1, 2]}}, {"fixed": [1, 2]},
                     id="static"),
    ],
)
async def test_every_input_selector_kind_feeds_the_step(
    selector: dict[str, Any], expected: Any
) -> None:
    f = flow("selectors", step("s", "echo", input=selector, output_key="got"))
    async with TestHarness(handlers=[echo], flows=[f]) as t:
        r = await t.run("selectors", CONTEXT)

        t.assert_completed(r.execution)
        assert r.execution.context["got"] == expected


@handler("needs-input")
async def needs_input(p: HandlerParams) -> StepResult:
    return Result.success(p.input["id"])  # trips over a null input, as handlers do


@pytest.mark.parametrize(
    ("selector", "note"),
    [
        pytest.param({"type": "key", "key": "absent"},
                     "(input key 'absent': the context has no such key, so the step's "
                     "input was null)", id="key"),
        pytest.param({"type": "path", "path": "user.nope.email"},
                     "(input path 'user.nope.email': 'user' has no 'nope', so the step's "
                     "input was null)", id="path"),
    ],
)
async def test_a_step_failing_on_a_missing_input_says_what_was_missing(
    selector: dict[str, Any], note: str
) -> None:
    # the step still gets None for a missing key, as in the original (a flow may read
    # an optional key); when it then fails, its error says why its input was null
    f = flow("selectors", step("s", "needs-input", input=selector, output_key="got"))
    async with TestHarness(handlers=[needs_input], flows=[f]) as t:
        r = await t.run("selectors", CONTEXT)

        t.assert_failed(r.execution, "HANDLER_ERROR")
        assert r.execution.error is not None
        assert r.execution.error.message.endswith(note)
        assert r.execution.error.step_id == "s"


def _router_flow(router: dict[str, Any]) -> dict[str, Any]:
    return flow(
        "routed", router,
        step("big", "mark", output_key="went"),
        step("small", "mark", output_key="went"),
        step("fallback", "mark", output_key="went"),
    )


@pytest.mark.parametrize(("amount", "target"), [(500, "big"), (5, "small"), (-1, "fallback")])
async def test_conditional_overrides_the_next_step(amount: int, target: str) -> None:
    router = step("route", "conditional", to="fallback", config={
        "conditions": [
            {"path": "amount", "op": "gte", "value": 100, "target": "big"},
            {"path": "amount", "op": "gte", "value": 0, "target": "small"},
        ],
        "default": "fallback",
    })
    async with TestHarness(handlers=[*builtin(), mark], flows=[_router_flow(router)]) as t:
        r = await t.run("routed", {"amount": amount})

        t.assert_completed(r.execution)
        assert r.execution.context["went"] == target
        transitions = [e.data for e in r.events if e.type == "transition"]
        assert transitions[0]["to_step_id"] == target


async def test_conditional_without_match_or_default_fails_with_no_match() -> None:
    router = step("route", "conditional", config={
        "conditions": [{"path": "amount", "op": "gt", "value": 100, "target": "big"}]})
    async with TestHarness(handlers=[*builtin(), mark], flows=[_router_flow(router)]) as t:
        r = await t.run("routed", {"amount": 1})

        t.assert_failed(r.execution, "NO_MATCH")


@pytest.mark.parametrize(("tier", "target"), [("gold", "big"), ("basic", "small"),
                                              ("other", "fallback")])
async def test_switch_overrides_the_next_step(tier: str, target: str) -> None:
    router = step("route", "switch", to="big", config={
        "path": "customer.tier",
        "cases": {"gold": "big", "basic": "small"},
        "default": "fallback",
    })
    async with TestHarness(handlers=[*builtin(), mark], flows=[_router_flow(router)]) as t:
        r = await t.run("routed", {"customer": {"tier": tier}})

        t.assert_completed(r.execution)
        assert r.execution.context["went"] == target


async def test_a_handler_next_step_override_wins_over_on_success() -> None:
    @handler("jump")
    async def jump(p: HandlerParams) -> StepResult:
        return Result.success("jumped", next_step="c")

    f = flow("jumping", step("a", "jump", to="b"), step("b", "mark", output_key="b"),
             step("c", "mark", output_key="c"))
    async with TestHarness(handlers=[jump, mark], flows=[f]) as t:
        r = await t.run("jumping")

        t.assert_completed(r.execution)
        assert "b" not in r.execution.context
        assert r.execution.context["c"] == "c"


@handler("dict-stop")
async def dict_stop(p: HandlerParams) -> StepResult:
    # The original's dict shape with an explicit null override: "no next step".
    return {"outcome": "success", "output": "stopped",  # type: ignore[return-value]
            "nextStepOverride": None}


@handler("dict-plain")
async def dict_plain(p: HandlerParams) -> StepResult:
    return {"outcome": "success", "output": "plain"}  # type: ignore[return-value]


async def test_a_null_next_step_override_completes_the_flow_despite_on_success() -> None:
    f = flow("stopping", step("a", "dict-stop", to="b", output_key="a"),
             step("b", "mark", output_key="b"))
    async with TestHarness(handlers=[dict_stop, mark], flows=[f]) as t:
        r = await t.run("stopping")

        t.assert_completed(r.execution)
        assert r.execution.context == {"a": "stopped"}
        assert r.execution.current_step_id == "a"
        assert types_of(r.events, prefix="step.") == ["step.started", "step.completed"]


async def test_an_absent_next_step_override_follows_on_success() -> None:
    f = flow("plain", step("a", "dict-plain", to="b", output_key="a"),
             step("b", "mark", output_key="b"))
    async with TestHarness(handlers=[dict_plain, mark], flows=[f]) as t:
        r = await t.run("plain")

        t.assert_completed(r.execution)
        assert r.execution.context == {"a": "plain", "b": "b"}


async def test_each_step_emits_started_then_completed_then_transition() -> None:
    async with TestHarness(handlers=[double, add_one], flows=[LINEAR]) as t:
        r = await t.run("linear", {"x": 1})

        assert types_of(r.events) == [
            "execution.created", "execution.started",
            "step.started", "step.completed", "transition",
            "step.started", "step.completed",
            "execution.completed",
        ]
        started, completed, transition = r.events[2:5]
        assert started.data["step_id"] == completed.data["step_id"] == "double"
        assert completed.data["outcome"] == "success"
        assert (transition.data["from_step_id"], transition.data["to_step_id"]) == \
            ("double", "inc")


async def test_events_of_an_execution_are_numbered_one_by_one() -> None:
    async with TestHarness(handlers=[double, add_one], flows=[LINEAR]) as t:
        r = await t.run("linear", {"x": 1})

        assert [e.seq for e in r.events] == list(range(1, len(r.events) + 1))
        assert all(e.execution_id == r.execution.id for e in r.events)
