from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.routing import (
    OPERATORS,
    ConditionalHandler,
    SwitchHandler,
    evaluate_condition,
    js_string,
)
from flowmonkey.kernel.paths import MISSING

MakeParams = Callable[..., HandlerParams]

DATA: dict[str, Any] = {
    "n": 10, "s": "hello world", "flag": True, "none": None, "tags": ["a", "b"],
    "obj": {"k": [1, 2]}, "zero": 0,
}

# (op, path, value, expected) — every operator has at least one true and one false case.
CASES = [
    ("eq", "n", 10, True), ("eq", "n", "10", False), ("eq", "flag", 1, False),
    ("eq", "obj", {"k": [1, 2]}, True), ("eq", "zero", False, False),
    ("neq", "n", 11, True), ("neq", "s", "hello world", False), ("neq", "flag", 1, True),
    ("gt", "n", 9, True), ("gt", "n", 10, False), ("gt", "n", "9", False),
    ("gt", "none", -1, False),
    ("gte", "n", 10, True), ("gte", "n", 11, False), ("gte", "none", 0, False),
    ("gte", "s", "hello", True),
    ("lt", "n", 11, True), ("lt", "n", 10, False), ("lt", "missing", 5, False),
    ("lte", "n", 10, True), ("lte", "n", 9.5, False), ("lte", "flag", 5, False),
    ("in", "n", [1, 10], True), ("in", "n", [1, 2], False), ("in", "n", "10", False),
    ("in", "flag", [1], False),
    ("nin", "n", [1, 2], True), ("nin", "n", [10], False), ("nin", "n", "abc", False),
    ("contains", "s", "lo wo", True), ("contains", "s", "xyz", False),
    ("contains", "tags", "a", True), ("contains", "tags", "c", False),
    ("contains", "n", 1, False),
    ("startsWith", "s", "hello", True), ("startsWith", "s", "world", False),
    ("startsWith", "tags", "a", False),
    ("endsWith", "s", "world", True), ("endsWith", "s", "hello", False),
    ("endsWith", "n", "0", False),
    ("exists", "n", None, True), ("exists", "zero", None, True), ("exists", "none", None, False),
    ("exists", "missing", None, False),
    ("notExists", "missing", None, True), ("notExists", "none", None, True),
    ("notExists", "n", None, False),
    ("matches", "s", r"^hel+o\s", True), ("matches", "s", "^world", False),
    ("matches", "n", "10", False),
    ("bogus", "n", 10, False),
]


def test_every_operator_is_covered() -> None:
    for op in OPERATORS:
        outcomes = {expected for case_op, _, _, expected in CASES if case_op == op}
        assert outcomes == {True, False}, op


@pytest.mark.parametrize(("op", "path", "value", "expected"), CASES)
async def test_operators(make_params: MakeParams, op: str, path: str, value: Any,
                         expected: bool) -> None:
    config = {"conditions": [{"path": path, "op": op, "value": value, "target": "yes"}],
              "default": "no"}
    result = await ConditionalHandler().execute(make_params(input=DATA, config=config))
    assert result.outcome == "success"
    assert result.has_next_step
    assert result.next_step == ("yes" if expected else "no")


def test_missing_values_compare_like_undefined() -> None:
    assert evaluate_condition(MISSING, "eq", MISSING)
    assert not evaluate_condition(MISSING, "eq", None)
    assert evaluate_condition([1, True], "eq", [1, True])
    assert not evaluate_condition([1, True], "eq", [True, 1])
    assert evaluate_condition(1, "eq", 1.0)


async def test_first_match_wins(make_params: MakeParams) -> None:
    config = {"conditions": [
        {"path": "n", "op": "gt", "value": 100, "target": "big"},
        {"path": "n", "op": "gt", "value": 5, "target": "medium"},
        {"path": "n", "op": "gt", "value": 1, "target": "small"},
    ]}
    result = await ConditionalHandler().execute(make_params(input=DATA, config=config))
    assert result.output == {"matched": "n", "op": "gt", "target": "medium"}
    assert result.next_step == "medium"


async def test_null_default_completes(make_params: MakeParams) -> None:
    config = {"conditions": [{"path": "n", "op": "eq", "value": 0, "target": "x"}],
              "default": None}
    result = await ConditionalHandler().execute(make_params(input=DATA, config=config))
    assert result.outcome == "success"
    assert result.output == {"matched": None, "target": None}
    assert result.next_step is None
    assert result.has_next_step


async def test_condition_without_target_follows_transitions(make_params: MakeParams) -> None:
    config = {"conditions": [{"path": "n", "op": "exists"}]}
    result = await ConditionalHandler().execute(make_params(input=DATA, config=config))
    assert result.outcome == "success"
    assert not result.has_next_step


async def test_no_match(make_params: MakeParams) -> None:
    config = {"conditions": [{"path": "n", "op": "eq", "value": 0, "target": "x"}]}
    result = await ConditionalHandler().execute(make_params(input=DATA, config=config))
    assert result.error is not None
    assert result.error.code == "NO_MATCH"
    assert result.error.message == "No condition matched and no default defined"


@pytest.mark.parametrize("config", [{}, {"conditions": []}])
async def test_missing_conditions(make_params: MakeParams, config: dict[str, Any]) -> None:
    result = await ConditionalHandler().execute(make_params(input=DATA, config=config))
    assert result.error is not None
    assert result.error.code == "MISSING_CONDITIONS"


async def test_invalid_regex(make_params: MakeParams) -> None:
    config = {"conditions": [{"path": "s", "op": "matches", "value": "([a-z", "target": "x"}]}
    result = await ConditionalHandler().execute(make_params(input=DATA, config=config))
    assert result.error is not None
    assert result.error.code == "INVALID_REGEX"


async def test_non_object_input_reads_as_missing(make_params: MakeParams) -> None:
    config = {"conditions": [{"path": "a", "op": "notExists", "target": "none"}]}
    result = await ConditionalHandler().execute(make_params(input="text", config=config))
    assert result.next_step == "none"


@pytest.mark.parametrize(
    ("data", "target"),
    [
        ({"v": "gold"}, "vip"),
        ({"v": True}, "yes"),
        ({"v": False}, "no"),
        ({"v": None}, "nothing"),
        ({}, "absent"),
        ({"v": 1}, "one"),
        ({"v": 1.0}, "one"),
        ({"v": 2.5}, "twoandhalf"),
    ],
)
async def test_switch_cases(make_params: MakeParams, data: dict[str, Any], target: str) -> None:
    config = {"path": "v", "cases": {
        "gold": "vip", "true": "yes", "false": "no", "null": "nothing", "undefined": "absent",
        "1": "one", "2.5": "twoandhalf"}}
    result = await SwitchHandler().execute(make_params(input=data, config=config))
    assert result.outcome == "success"
    assert result.next_step == target
    assert result.output == {"path": "v", "value": data.get("v"), "target": target}


async def test_switch_default_and_empty_case(make_params: MakeParams) -> None:
    config = {"path": "v", "cases": {"a": "", "b": "bee"}, "default": "fallback"}
    result = await SwitchHandler().execute(make_params(input={"v": "a"}, config=config))
    assert result.next_step == "fallback"
    assert result.output == {"path": "v", "value": "a", "target": "fallback"}


async def test_switch_null_default_completes(make_params: MakeParams) -> None:
    config: dict[str, Any] = {"path": "v", "cases": {}, "default": None}
    result = await SwitchHandler().execute(make_params(input={"v": "z"}, config=config))
    assert result.outcome == "success"
    assert result.has_next_step
    assert result.next_step is None


async def test_switch_no_match(make_params: MakeParams) -> None:
    config = {"path": "v", "cases": {"a": "x"}}
    result = await SwitchHandler().execute(make_params(input={"v": 3}, config=config))
    assert result.error is not None
    assert result.error.code == "NO_MATCH"
    assert result.error.message == 'No case matched value "3" and no default defined'


async def test_switch_missing_path(make_params: MakeParams) -> None:
    result = await SwitchHandler().execute(make_params(input={}, config={"cases": {}}))
    assert result.error is not None
    assert result.error.code == "MISSING_PATH"
    assert result.error.message == "No path defined in switch config"


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (None, "null"), (MISSING, "undefined"), (1.0, "1"),
     (-0.0, "0"), (2.5, "2.5"), (float("nan"), "NaN"), (float("inf"), "Infinity"), ("x", "x"),
     (10, "10")],
)
def test_js_string(value: Any, text: str) -> None:
    assert js_string(value) == text
