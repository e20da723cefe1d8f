"""Context limits (A7): the four codes, and what counts as size and depth."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.kernel import limits as lim
from flowmonkey.model.limits import ContextLimits


def violation(call: Any, *args: Any) -> lim.LimitViolation:
    with pytest.raises(lim.LimitViolation) as caught:
        call(*args)
    return caught.value


def test_a_value_over_max_size_bytes_is_too_large() -> None:
    found = violation(lim.check_value, "k", "x" * 10, ContextLimits(max_size_bytes=11))

    assert found.code == lim.CONTEXT_VALUE_TOO_LARGE == "CONTEXT_VALUE_TOO_LARGE"
    assert "'k'" in found.message
    assert "12 bytes" in found.message


def test_a_value_at_max_size_bytes_is_fine() -> None:
    assert lim.check_value("k", "x" * 10, ContextLimits(max_size_bytes=12)) == 12


def test_a_value_nested_past_max_depth_breaks_the_nesting_limit() -> None:
    found = violation(lim.check_value, "k", {"a": {"b": {"c": 1}}},
                      ContextLimits(max_depth=2))

    assert found.code == lim.CONTEXT_NESTING_LIMIT == "CONTEXT_NESTING_LIMIT"
    assert "3 levels" in found.message


def test_a_context_with_more_than_max_keys_breaks_the_key_limit() -> None:
    found = violation(lim.check_context, {"a": 1, "b": 2, "c": 3}, ContextLimits(max_keys=2))

    assert found.code == lim.CONTEXT_KEY_LIMIT == "CONTEXT_KEY_LIMIT"


def test_a_context_over_the_total_size_breaks_the_size_limit() -> None:
    found = violation(lim.check_context, {"a": "x" * 100},
                      ContextLimits(max_total_size_bytes=50))

    assert found.code == lim.CONTEXT_SIZE_LIMIT == "CONTEXT_SIZE_LIMIT"


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ("s", 0), (None, 0), ({}, 1), ([], 1), ({"a": 1}, 1), ([1, 2], 1),
     ({"a": {"b": 1}}, 2), ({"arr": [{"nested": 1}]}, 3)],
)
def test_depth_counts_like_the_original(value: Any, depth: int) -> None:
    assert lim.depth_of(value, 32) == depth


@pytest.mark.parametrize(("value", "size"),
                         [("hello", 7), (123, 3), (True, 4), (None, 4), ({"a": 1}, 7)])
def test_size_is_the_json_byte_length(value: Any, size: int) -> None:
    assert lim.encoded_size(value) == size


def test_a_value_that_is_not_json_is_refused() -> None:
    found = violation(lim.encoded_size, {"x": {1, 2}})

    assert found.code == lim.INVALID_VALUE


def test_check_writes_checks_each_value_and_the_resulting_context() -> None:
    limits = ContextLimits(max_keys=2)
    context = {"a": 1}

    lim.check_writes(context, [("a", 2), ("b", 3)], limits)  # two keys: fine
    found = violation(lim.check_writes, context, [("b", 3), ("c", 4)], limits)

    assert found.code == lim.CONTEXT_KEY_LIMIT
    assert context == {"a": 1}


def test_check_writes_counts_an_overwrite_once() -> None:
    lim.check_writes({"a": "x" * 40}, [("a", "y")], ContextLimits(max_total_size_bytes=20))


def test_check_writes_of_nothing_passes() -> None:
    lim.check_writes({"a": 1, "b": 2}, [], ContextLimits(max_keys=1))
