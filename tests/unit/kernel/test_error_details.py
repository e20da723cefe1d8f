"""Error details the kernel writes into events are bounded and always encodable."""

from __future__ import annotations

from typing import Any

import orjson

from flowmonkey.kernel.error_details import (
    MAX_DETAILS_BYTES,
    MAX_DETAILS_DEPTH,
    MAX_MESSAGE_CHARS,
    TRUNCATED,
    bounded_details,
    bounded_error,
)


def _chain(levels: int) -> dict[str, Any]:
    """An error nested as a chain of failed sub-flows nests it."""
    error: dict[str, Any] = {"code": "BOTTOM", "message": "reached the bottom"}
    for _ in range(levels):
        error = {"code": "CHILD_FAILED", "message": "child failed", "details": error}
    return error


def _nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_nesting(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_nesting(v) for v in value), default=0)
    return 0


def test_a_chain_deeper_than_the_encoder_can_write_is_cut_to_the_depth_bound() -> None:
    deep = _chain(400)  # orjson refuses past 254 levels

    bounded = bounded_details(deep)

    assert _nesting(bounded) == MAX_DETAILS_DEPTH
    assert orjson.dumps(bounded)
    assert bounded["code"] == "CHILD_FAILED"  # the newest causes are kept
    assert TRUNCATED in orjson.dumps(bounded).decode()


def test_details_over_the_size_bound_become_a_preview() -> None:
    bounded = bounded_details({"blob": "x" * (4 * MAX_DETAILS_BYTES)})

    assert bounded["truncated"] is True
    assert bounded["bytes"] > MAX_DETAILS_BYTES
    assert len(orjson.dumps(bounded)) <= MAX_DETAILS_BYTES


def test_values_json_cannot_carry_are_written_as_text() -> None:
    bounded = bounded_details({"nan": float("nan"), "lone": "\ud800", "obj": object(),
                               "set": {1}, 3: "int key"})

    decoded = orjson.loads(orjson.dumps(bounded))
    assert decoded["nan"] == "nan"
    assert decoded["lone"] == "\\ud800"
    assert decoded["3"] == "int key"


def test_small_details_are_kept_as_they_are() -> None:
    details = {"flowId": "child", "lines": [1, 2.5, None, True], "nested": {"a": {"b": 1}}}

    assert bounded_details(details) == details


def test_an_error_keeps_its_code_and_bounds_its_message() -> None:
    error = bounded_error({"code": "X", "message": "m" * (MAX_MESSAGE_CHARS * 3),
                           "step_id": "s", "details": _chain(50)})

    assert error["code"] == "X"
    assert error["step_id"] == "s"
    assert len(error["message"]) < MAX_MESSAGE_CHARS + 20
    assert _nesting(error["details"]) <= MAX_DETAILS_DEPTH
