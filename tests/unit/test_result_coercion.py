"""``coerce_result``: the original's dict-shaped results, in particular ``nextStepOverride``.

The original decides the next step with ``override !== undefined ? override :
transition``: an override that is present (even ``null``) wins; ``null`` means "nowhere",
so a success completes and a failure fails the execution. An absent override leaves the
step's transitions in charge.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.model.result import InvalidResult, Result, StepResult, coerce_result


@pytest.mark.parametrize("key", ["nextStepOverride", "next_step"])
def test_an_explicit_null_override_on_success_is_kept_as_an_override(key: str) -> None:
    result = coerce_result({"outcome": "success", "output": 1, key: None})

    assert result.outcome == "success"
    assert result.has_next_step
    assert result.next_step is None


def test_an_absent_override_on_success_leaves_the_transitions_in_charge() -> None:
    result = coerce_result({"outcome": "success", "output": 1})

    assert not result.has_next_step
    assert result.next_step is None


def test_a_step_id_override_on_success_is_kept() -> None:
    result = coerce_result({"outcome": "success", "nextStepOverride": "c"})

    assert result.has_next_step
    assert result.next_step == "c"


@pytest.mark.parametrize(("override", "expected"), [("handle", "handle"), (None, None)])
def test_an_override_on_failure_is_kept_too(override: Any, expected: Any) -> None:
    result = coerce_result({"outcome": "failure", "error": {"code": "X", "message": "x"},
                            "nextStepOverride": override})

    assert result.outcome == "failure"
    assert result.has_next_step
    assert result.next_step == expected


def test_an_absent_override_on_failure_leaves_the_transitions_in_charge() -> None:
    result = coerce_result({"outcome": "failure", "error": {"code": "X", "message": "x"}})

    assert not result.has_next_step


def test_a_step_result_is_passed_through_unchanged() -> None:
    given = StepResult("success", next_step=None, has_next_step=True)

    assert coerce_result(given) is given


@pytest.mark.parametrize("override", [3, ["b"], {"to": "b"}, True])
def test_an_override_that_is_not_a_step_id_or_null_is_refused(override: Any) -> None:
    with pytest.raises(InvalidResult, match="nextStepOverride"):
        coerce_result({"outcome": "success", "nextStepOverride": override})


@pytest.mark.parametrize("raw", [
    {"outcome": "wait", "resumeToken": "tok\x00en"},
    {"outcome": "wait", "resumeToken": 42},
    Result.wait_for_signal("approval", resume_token="tok\x00en"),
])
def test_a_resume_token_that_cannot_be_stored_is_refused(raw: object) -> None:
    with pytest.raises(InvalidResult, match="resume token must be a string without NUL"):
        coerce_result(raw)


def test_a_plain_resume_token_is_kept() -> None:
    assert coerce_result({"outcome": "wait", "resumeToken": "tok-1"}).resume_token == "tok-1"
