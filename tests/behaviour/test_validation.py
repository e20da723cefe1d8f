"""Bad definitions are refused at registration with an error that names the flow, the
step and the field (FEATURES A1, A2); unknown flows are refused at create."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import (
    ColumnDef,
    Engine,
    FlowNotFoundError,
    FlowValidationError,
    HandlerParams,
    RegistrationError,
    Result,
    StepResult,
    TableDef,
    handler,
)
from flowmonkey.handlers import builtin
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step


@handler("ok")
async def ok(p: HandlerParams) -> StepResult:
    return Result.success()


GOOD = flow("good", step("a", "ok", to="b"), step("b", "ok"))
TABLE = TableDef(id="orders", columns=[ColumnDef(id="order_id")])


def _refused(raw: dict[str, Any], tables: list[TableDef] | None = None) -> FlowValidationError:
    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[raw], handlers=[ok], tables=tables or [])
    return info.value


def test_a_step_without_a_type_is_refused_naming_flow_step_and_field() -> None:
    raw = flow("broken", step("a", "ok"))
    del raw["steps"]["a"]["type"]

    err = _refused(raw)

    assert (err.flow_id, err.step_id, err.field) == ("broken", "a", "type")
    assert "broken" in str(err)
    assert "'a'" in str(err)
    assert "type" in str(err)


def test_a_flow_without_an_initial_step_is_refused() -> None:
    raw = flow("broken", step("a", "ok"))
    del raw["initialStepId"]

    err = _refused(raw)

    assert err.flow_id == "broken"
    assert err.field is not None
    assert "initial" in err.field.lower()


def test_an_initial_step_that_does_not_exist_is_refused() -> None:
    raw = flow("broken", step("a", "ok"))
    raw["initialStepId"] = "nope"

    err = _refused(raw)

    assert (err.flow_id, err.field) == ("broken", "initialStepId")
    assert "field initialStepId:" in str(err)
    assert "nope" in str(err)


def test_steps_that_are_not_objects_are_refused() -> None:
    err = _refused({"id": "broken", "initialStepId": "a", "steps": {"a": 42}})

    assert err.flow_id == "broken"
    assert err.step_id == "a"


def test_an_unknown_input_selector_type_is_refused() -> None:
    err = _refused(flow("broken", step("a", "ok", input={"type": "magic"})))

    assert (err.flow_id, err.step_id) == ("broken", "a")
    assert err.field is not None
    assert err.field.startswith("input")


def test_an_unknown_handler_type_is_refused() -> None:
    err = _refused(flow("broken", step("a", "ok", to="b"), step("b", "no-such-handler")))

    assert (err.flow_id, err.step_id, err.field) == ("broken", "b", "type")
    assert "no-such-handler" in str(err)


@pytest.mark.parametrize(("bad_step", "field"), [
    (step("a", "ok", to="ghost"), "transitions.onSuccess"),
    (step("a", "ok", on_failure="ghost"), "transitions.onFailure"),
    (step("a", "ok", on_resume="ghost"), "transitions.onResume"),
])
def test_an_unknown_transition_target_is_refused(bad_step: dict[str, Any], field: str) -> None:
    err = _refused(flow("broken", bad_step))

    assert (err.flow_id, err.step_id, err.field) == ("broken", "a", field)
    assert f"field {field}:" in str(err)
    assert "ghost" in str(err)


def test_a_pipe_naming_an_unknown_table_is_refused() -> None:
    raw = flow("broken", step("a", "ok"), pipes=[{
        "id": "p1", "stepId": "a", "tableId": "no-such-table",
        "mappings": [{"sourcePath": "x", "columnId": "order_id"}]}])

    err = _refused(raw, [TABLE])

    assert err.flow_id == "broken"
    assert err.field == "pipes[p1].tableId"
    assert "no-such-table" in str(err)


def test_a_pipe_naming_an_unknown_step_is_refused() -> None:
    raw = flow("broken", step("a", "ok"), pipes=[{
        "id": "p1", "stepId": "ghost", "tableId": "orders",
        "mappings": [{"sourcePath": "x", "columnId": "order_id"}]}])

    err = _refused(raw, [TABLE])

    assert err.field == "pipes[p1].stepId"
    assert "ghost" in str(err)


def test_a_pipe_naming_an_unknown_column_is_refused() -> None:
    raw = flow("broken", step("a", "ok"), pipes=[{
        "id": "p1", "stepId": "a", "tableId": "orders",
        "mappings": [{"sourcePath": "x", "columnId": "colour"}]}])

    err = _refused(raw, [TABLE])

    assert err.field == "pipes[p1].mappings[0].columnId"
    assert "colour" in str(err)


def test_every_problem_is_listed() -> None:
    err = _refused(flow("broken", step("a", "nope", to="ghost")))

    assert len(err.problems) == 2
    assert any("ghost" in p for p in err.problems)
    assert any("nope" in p for p in err.problems)


def test_a_number_for_the_version_says_to_quote_it_and_every_other_problem_is_listed() -> None:
    raw = flow("broken", step("a", "ok", to="ghost", retry={"maxAttempts": -1}),
               step("b", "nope"), step("c", "switch", config={"path": "x", "cases": {"1": "d"}}))
    raw["version"] = 1  # as YAML reads `version: 1`

    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[raw], handlers=[ok, *builtin()])
    err = info.value

    assert err.problems == [
        "flow 'broken', field version: must be a string, got the number 1: quote it, e.g. "
        'version: "1" or version: "1.0.0" (YAML reads an unquoted 1 as a number)',
        "flow 'broken', step 'a', field retry.maxAttempts: Input should be greater than or "
        "equal to 0",
        "flow 'broken', step 'a', field transitions.onSuccess: unknown step 'ghost'",
        err.problems[3],  # the list of known types is the built-in handlers'
        "flow 'broken', step 'c', field config.cases.1: unknown step 'd'",
    ]
    assert err.problems[3].startswith("flow 'broken', step 'b', field type: unknown handler "
                                      "type 'nope'")
    assert (err.flow_id, err.step_id, err.field) == ("broken", None, "version")


def test_a_required_field_that_is_invalid_still_lists_every_schema_problem() -> None:
    raw = flow("broken", step("a", "ok", to="ghost"))
    raw["initialStepId"] = 7
    raw["version"] = 2.5

    err = _refused(raw)

    assert len(err.problems) == 2
    assert "version: \"2.5\"" in err.problems[0]
    assert "initialStepId" in err.problems[1]


def test_registering_the_same_flow_id_and_version_twice_is_refused() -> None:
    engine = Engine(flows=[GOOD], handlers=[ok])

    with pytest.raises(RegistrationError) as info:
        engine.register_flow(GOOD)

    assert "good@1.0.0" in str(info.value)


def test_another_version_of_a_registered_flow_is_accepted() -> None:
    engine = Engine(flows=[GOOD], handlers=[ok])

    engine.register_flow({**GOOD, "version": "1.1.0"})

    assert engine.flows.versions("good") == ["1.1.0", "1.0.0"]


def test_registering_the_same_handler_type_twice_is_refused() -> None:
    with pytest.raises(RegistrationError):
        Engine(handlers=[ok, ok])


async def test_creating_an_execution_of_an_unknown_flow_is_refused() -> None:
    async with TestHarness(handlers=[ok], flows=[GOOD]) as t:
        with pytest.raises(FlowNotFoundError) as info:
            await t.create("no-such-flow")

        assert "no-such-flow" in str(info.value)
        assert (await t.engine.list()).items == []


async def test_creating_an_unknown_version_of_a_known_flow_is_refused() -> None:
    async with TestHarness(handlers=[ok], flows=[GOOD]) as t:
        with pytest.raises(FlowNotFoundError):
            await t.create("good", flow_version="9.9.9")


# The fields are named as users write them: the original's camelCase JSON names, also
# when the definition was given with the Python (snake_case) names.


@pytest.mark.parametrize("spelling", ["camel", "snake"])
def test_a_malformed_field_is_named_in_camel_case_however_it_was_written(
        spelling: str) -> None:
    names = {"camel": ("initialStepId", "outputKey", "transitions", "onSuccess"),
             "snake": ("initial_step_id", "output_key", "transitions", "on_success")}
    initial, output_key, transitions, on_success = names[spelling]
    raw = {"id": "broken", initial: "a",
           "steps": {"a": {"type": "ok", output_key: 5, transitions: {on_success: 7}}}}

    err = _refused(raw)

    assert (err.step_id, err.field) == ("a", "outputKey")
    assert "field outputKey:" in str(err)
    assert "field transitions.onSuccess:" in str(err)
    assert "_" not in "".join(line.split(": ")[0] for line in err.problems)


def test_a_retry_field_out_of_range_is_named_in_camel_case() -> None:
    err = _refused(flow("broken", step("a", "ok", retry={"max_attempts": -1})))

    assert (err.step_id, err.field) == ("a", "retry.maxAttempts")


def test_a_missing_selector_field_is_named_without_the_selector_tag() -> None:
    err = _refused(flow("broken", step("a", "ok", input={"type": "key"})))

    assert (err.step_id, err.field) == ("a", "input.key")


def test_a_malformed_pipe_field_is_named_in_camel_case() -> None:
    raw = flow("broken", step("a", "ok"), pipes=[{
        "id": "p1", "step_id": "a", "table_id": "orders",
        "mappings": [{"source_path": "", "column_id": "order_id"}]}])

    err = _refused(raw, [TABLE])

    assert err.field == "pipes[0].mappings[0].sourcePath"


def test_a_step_key_that_differs_from_its_id_names_the_id_field() -> None:
    raw = flow("broken", step("a", "ok"))
    raw["steps"]["a"]["id"] = "other_name"
    raw["steps"]["other_name"] = dict(raw["steps"]["a"])

    err = _refused(raw)

    assert (err.step_id, err.field) == ("a", "id")
