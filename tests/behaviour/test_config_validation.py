"""Step configs are checked against their handlers when a flow is registered.

Each problem is refused with the flow, the step and the field as users write it
(``config.conditions[0].target``): the handler's configSchema (types, enums, required
keys), a misspelled key, an expression that does not parse, a routing target that is
not a step. Unknown keys that look like no known one pass, as in the original.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import Engine, FlowValidationError, HandlerParams, Result, StepResult, handler
from flowmonkey.handlers import builtin
from tests.behaviour.flows import flow, step


@handler("ok")
async def ok(params: HandlerParams) -> StepResult:
    return Result.success({})


@handler("sized", config_schema={"type": "object", "required": ["size"],
                                 "properties": {"size": {"type": "integer", "minimum": 1}}})
async def sized(params: HandlerParams) -> StepResult:
    return Result.success({"size": params.config["size"]})


def refused(*steps: dict[str, Any]) -> FlowValidationError:
    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("f", *steps)], handlers=[*builtin(), ok, sized])
    return info.value


def accepted(*steps: dict[str, Any]) -> None:
    Engine(flows=[flow("f", *steps)], handlers=[*builtin(), ok, sized])


def test_a_misspelled_config_key_is_refused_with_the_key_it_resembles() -> None:
    err = refused(step("t", "transform", config={"expresion": "input.x"}))
    assert (err.flow_id, err.step_id, err.field) == ("f", "t", "config.expresion")
    assert "did you mean 'expression'?" in str(err)


def test_a_key_that_resembles_no_known_one_passes() -> None:
    accepted(step("t", "transform", config={"expression": "1", "ui": {"x": 10, "y": 20}}))


def test_a_value_of_the_wrong_type_is_refused_with_the_schemas_reason() -> None:
    err = refused(step("d", "delay", config={"ms": "abc"}))
    assert (err.step_id, err.field) == ("d", "config.ms")
    assert "'abc' is not of type 'number'" in str(err)


def test_a_missing_required_key_is_refused() -> None:
    err = refused(step("c", "conditional", config={"default": None}))
    assert (err.step_id, err.field) == ("c", "config")
    assert "'conditions' is a required property" in str(err)


def test_a_value_outside_an_enum_is_refused_at_its_path() -> None:
    err = refused(step("c", "conditional", config={
        "conditions": [{"path": "x", "op": "equals", "value": 1}]}))
    assert err.field == "config.conditions[0].op"
    assert "'equals' is not one of" in str(err)


def test_a_transform_expression_that_does_not_parse_is_refused() -> None:
    err = refused(step("t", "transform", config={"expression": "input.x +"}))
    assert (err.step_id, err.field) == ("t", "config.expression")


def test_routing_targets_must_be_steps_of_the_flow() -> None:
    err = refused(
        step("c", "conditional", config={
            "conditions": [{"path": "x", "op": "eq", "value": 1, "target": "b"},
                           {"path": "x", "op": "eq", "value": 2, "target": "nowhere"}],
            "default": "elsewhere"}),
        step("b", "ok"))
    assert err.field == "config.default"
    assert "unknown step 'elsewhere'" in str(err)
    assert any("config.conditions[1].target: unknown step 'nowhere'" in p
               for p in err.problems)
    assert not any("conditions[0]" in p for p in err.problems)

    err = refused(step("s", "switch", config={"path": "kind",
                                              "cases": {"a": "b", "z": "missing"}}),
                  step("b", "ok"))
    assert err.field == "config.cases['z']"


def test_null_and_absent_targets_end_the_flow_and_pass() -> None:
    accepted(step("c", "conditional", config={
        "conditions": [{"path": "x", "op": "eq", "value": 1, "target": None},
                       {"path": "x", "op": "exists"}],
        "default": None}))
    accepted(step("s", "switch", config={"path": "kind", "cases": {"a": ""}}))


def test_a_matches_pattern_that_does_not_compile_is_refused() -> None:
    err = refused(step("c", "conditional", config={
        "conditions": [{"path": "x", "op": "matches", "value": "(unclosed"}]}))
    assert err.field == "config.conditions[0].value"
    assert "invalid regular expression" in str(err)


def test_a_user_handlers_config_schema_is_enforced_too() -> None:
    err = refused(step("z", "sized", config={"size": 0}))
    assert (err.step_id, err.field) == ("z", "config.size")
    assert "less than the minimum of 1" in str(err)
    accepted(step("z", "sized", config={"size": 3}))


def test_a_handler_whose_config_schema_is_not_json_schema_is_named() -> None:
    @handler("broken-schema", config_schema={"type": "no-such-type"})
    async def broken(params: HandlerParams) -> StepResult:
        return Result.success({})

    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("f", step("b", "broken-schema"))], handlers=[broken])
    assert "'broken-schema' handler's configSchema is not valid JSON Schema" in str(info.value)


def test_every_problem_of_a_flow_is_reported_at_once() -> None:
    err = refused(step("d", "delay", to="t", config={"ms": -1}),
                  step("t", "transform", config={"expresion": "1"}))
    assert len(err.problems) == 2
    assert {p.split(", field ")[0] for p in err.problems} == {
        "flow f@1.0.0, step 'd'", "flow f@1.0.0, step 't'"}
