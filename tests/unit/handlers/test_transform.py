from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.transform import TransformHandler

MakeParams = Callable[..., HandlerParams]


async def test_expression_over_input_and_context(make_params: MakeParams) -> None:
    result = await TransformHandler().execute(make_params(
        input={"price": 2.5, "qty": 4}, context={"taxRate": 0.2},
        config={"expression": "input.price * input.qty * (1 + context.taxRate)"}))
    assert result.outcome == "success"
    assert result.output == {"result": pytest.approx(12.0)}


async def test_expression_builds_objects(make_params: MakeParams) -> None:
    result = await TransformHandler().execute(make_params(
        input={"users": [{"name": "a", "age": 30}, {"name": "b", "age": 17}]},
        config={"expression": "{'adults': [u.name for u in input.users if u.age >= 18]}"}))
    assert result.output == {"result": {"adults": ["a"]}}


@pytest.mark.parametrize(
    "expression",
    ["().__class__.__bases__", "__import__('os').system('echo pwned')",
     "input.__class__.__init__.__globals__", "open('/etc/passwd').read()"],
)
async def test_sandbox_escape_fails_safely(make_params: MakeParams, expression: str) -> None:
    result = await TransformHandler().execute(make_params(
        input={"a": 1}, config={"expression": expression}))
    assert result.outcome == "failure"
    assert result.error is not None
    assert result.error.code == "TRANSFORM_ERROR"
    assert result.error.details["expression"] == expression


async def test_expression_errors(make_params: MakeParams) -> None:
    result = await TransformHandler().execute(make_params(
        input={}, config={"expression": "input.total / 0"}))
    assert result.error is not None
    assert result.error.code == "TRANSFORM_ERROR"
    assert "has no key 'total'" in result.error.message
    assert result.error.details["phase"] == "evaluate"

    result = await TransformHandler().execute(make_params(config={"expression": "1 +"}))
    assert result.error is not None
    assert result.error.code == "TRANSFORM_ERROR"
    assert result.error.details["phase"] == "parse"


@pytest.mark.parametrize(
    ("config", "data", "expected"),
    [
        ({"operation": "pick", "keys": ["a", "c", "zz"]}, {"a": 1, "b": 2, "c": 3},
         {"a": 1, "c": 3}),
        ({"operation": "omit", "keys": ["b"]}, {"a": 1, "b": 2}, {"a": 1}),
        ({"operation": "map", "mapping": {"id": "{{user.id}}", "n": "$.user.name",
                                          "first": "tags.0", "gone": "nope"}},
         {"user": {"id": 7, "name": "x"}, "tags": ["t1"]}, {"id": 7, "n": "x", "first": "t1"}),
        ({"operation": "filter"}, {"a": 1}, {"a": 1}),
        ({"operation": "merge"}, {"a": 1}, {"a": 1}),
        ({"operation": "unknown"}, {"a": 1}, {"a": 1}),
        ({}, {"a": 1}, {"a": 1}),
        ({"operation": "pick", "keys": ["a"]}, [1, 2], [1, 2]),
        ({"operation": "pick", "keys": ["a"]}, "text", "text"),
    ],
)
async def test_legacy_operations(make_params: MakeParams, config: dict[str, Any], data: Any,
                                 expected: Any) -> None:
    result = await TransformHandler().execute(make_params(input=data, config=config))
    assert result.outcome == "success"
    assert result.output == expected


async def test_legacy_bad_keys(make_params: MakeParams) -> None:
    result = await TransformHandler().execute(make_params(
        input={"a": 1}, config={"operation": "pick", "keys": "a"}))
    assert result.error is not None
    assert result.error.code == "TRANSFORM_ERROR"
