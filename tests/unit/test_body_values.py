"""The request body check (flowmonkey.model.storable) on its own: what it refuses,
the path it names, and its walk over wide and deep bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowmonkey.model.storable import LOG_MAX_DEPTH, UnstorableValue, check_body


def refused(body: dict[str, Any], max_depth: int = 32) -> UnstorableValue:
    with pytest.raises(UnstorableValue) as raised:
        check_body(body, max_depth)
    return raised.value


@pytest.mark.parametrize(("body", "path", "reason"), [
    ({"a": "\ud800"}, "a", "lone surrogate"),
    ({"a": {"b": ["ok", "x\udfff"]}}, "a.b[1]", "lone surrogate"),
    ({"a": [{"\ud83d": 1}]}, "a[0].\\ud83d", "the key: a lone surrogate"),
    ({"a": "x\x00"}, "a", "NUL"),
    ({"a": {"k\x00": 1}}, "a.k\\u0000", "the key: a NUL"),
    ({"a": [2**64]}, "a[0]", "64-bit"),
    ({"a": [-(2**63) - 1]}, "a[0]", "64-bit"),
    ({"a": {"b": float("nan")}}, "a.b", "not a JSON number"),
    ({"a": (1, "\ud800")}, "a[1]", "lone surrogate"),
])
def test_an_unstorable_value_is_named_by_its_path(body: dict[str, Any], path: str,
                                                  reason: str) -> None:
    error = refused(body)
    assert error.path == path
    assert reason in error.reason


def test_the_first_problem_in_document_order_is_named() -> None:
    body = json.loads('{"a": [1, {"b": "\\u0000"}], "c": "\\ud800"}')
    assert refused(body).path == "a[1].b"


def test_depth_is_counted_as_a_contexts_values() -> None:
    # a field is an object whose values may nest max_depth levels
    fits: dict[str, Any] = {"f": {"v": [[[]]]}}  # v nests 3
    check_body(fits, 3)
    assert refused({"f": {"v": [[[[]]]]}}, 3).path == "f.v[0][0][0]"
    # no engine limit lets through more than the log can encode
    deep: Any = []
    for _ in range(LOG_MAX_DEPTH + 5):
        deep = [deep]
    assert "nests deeper" in refused({"f": deep}, 10_000).reason


def test_long_keys_are_cut_in_the_path() -> None:
    error = refused({"k" * 1000: "\ud800"})
    assert len(error.path) < 100


def test_a_wide_body_is_walked_without_a_frame_per_value() -> None:
    body = {"a": [0] * 200_000 + ["\ud800"], "b": [{"k": i} for i in range(50_000)]}
    assert refused(body).path == "a[200000]"
    check_body({"b": body["b"]})
