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
from flowmonkey.handlers.base import HandlerMetadata
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
    assert str(err).endswith("field config.ms: must be a number")
    assert "abc" not in str(err)  # what is expected, never the value given


def test_a_missing_required_key_is_refused() -> None:
    err = refused(step("c", "conditional", config={"default": None}))
    assert (err.step_id, err.field) == ("c", "config.conditions")
    assert str(err).endswith("field config.conditions: is required")


def test_a_value_outside_an_enum_is_refused_at_its_path() -> None:
    err = refused(step("c", "conditional", config={
        "conditions": [{"path": "x", "op": "equals", "value": 1}]}))
    assert err.field == "config.conditions[0].op"
    assert 'must be one of "eq", "neq"' in str(err)


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
    assert err.field == "config.cases.z"


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
    assert str(err).endswith("field config.size: must be at least 1")
    accepted(step("z", "sized", config={"size": 3}))


def test_a_handler_whose_config_schema_is_not_json_schema_is_named() -> None:
    @handler("broken-schema", config_schema={"type": "no-such-type"})
    async def broken(params: HandlerParams) -> StepResult:
        return Result.success({})

    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("f", step("b", "broken-schema"))], handlers=[broken])
    assert "'broken-schema' handler's configSchema cannot be used" in str(info.value)
    assert "fix the handler's metadata" in str(info.value)


def test_every_problem_of_a_flow_is_reported_at_once() -> None:
    err = refused(step("d", "delay", to="t", config={"ms": -1}),
                  step("t", "transform", config={"expresion": "1"}))
    assert len(err.problems) == 2
    assert {p.split(", field ")[0] for p in err.problems} == {
        "flow f@1.0.0, step 'd'", "flow f@1.0.0, step 't'"}


def test_null_counts_as_absent_as_the_handlers_read_it() -> None:
    accepted(step("h", "http", config={"url": "https://example.com", "timeout": None,
                                       "retries": None, "headers": None}))
    accepted(step("s", "switch", config={"path": "kind", "cases": {"a": None}}))
    err = refused(step("c", "conditional", config={"conditions": None}))
    assert err.field == "config.conditions"  # a required key is still required


def test_keys_of_the_original_and_a_lowercase_method_pass() -> None:
    accepted(step("b", "batch-process", config={"expression": "item * 2",
                                                "delayBetweenBatches": 10}))
    accepted(step("h", "http", config={"url": "https://example.com", "method": "post"}))


def test_header_values_are_never_repeated_in_a_message() -> None:
    err = refused(step("h", "http", config={"url": "https://example.com",
                                            "headers": {"Authorization": ["Bearer s3cret"]}}))
    assert err.field == "config.headers.Authorization"
    assert "s3cret" not in str(err)


def test_a_batch_expression_that_does_not_parse_is_refused() -> None:
    err = refused(step("b", "batch-process", config={"expression": "item +"}))
    assert (err.step_id, err.field) == ("b", "config.expression")


@pytest.mark.parametrize("pattern", ["a{99999999999}", "(" * 2000 + ")" * 2000])
def test_a_pattern_too_large_to_compile_is_reported_not_raised(pattern: str) -> None:
    err = refused(step("c", "conditional", config={
        "conditions": [{"path": "x", "op": "matches", "value": pattern}]}))
    assert err.field == "config.conditions[0].value"


def test_a_schema_in_an_older_draft_is_read_in_that_draft() -> None:
    @handler("pair", config_schema={
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
        "properties": {"pair": {"type": "array", "items": [{"type": "string"},
                                                           {"type": "integer"}]}}})
    async def pair(params: HandlerParams) -> StepResult:
        return Result.success({})

    Engine(flows=[flow("f", step("p", "pair", config={"pair": ["a", 1]}))], handlers=[pair])
    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("f", step("p", "pair", config={"pair": ["a", "b"]}))],
               handlers=[pair])
    assert info.value.field == "config.pair[1]"


def test_an_unresolvable_reference_or_a_failing_check_is_reported() -> None:
    @handler("ref", config_schema={"$ref": "#/definitions/nope"})
    async def ref(params: HandlerParams) -> StepResult:
        return Result.success({})

    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("f", step("r", "ref"))], handlers=[ref])
    assert "'ref' handler's configSchema cannot be used" in str(info.value)

    class Fussy:
        metadata = HandlerMetadata(type="fussy")

        async def execute(self, params: HandlerParams) -> StepResult:
            return Result.success({})

        def check_config(self, config: Any, step_ids: frozenset[str]) -> list[tuple[str, str]]:
            raise RuntimeError("boom")

    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("f", step("z", "fussy"))], handlers=[Fussy()])
    assert "'fussy' handler's check_config failed: RuntimeError: boom" in str(info.value)
