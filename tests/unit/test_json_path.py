"""``json_path``: pydantic error locations named as users write definitions."""

from __future__ import annotations

import pytest

from flowmonkey.model.flow import json_path


@pytest.mark.parametrize(("loc", "expected"), [
    (("initial_step_id",), "initialStepId"),
    (("initialStepId",), "initialStepId"),
    (("transitions", "on_success"), "transitions.onSuccess"),
    (("retry", "max_attempts"), "retry.maxAttempts"),
    (("pipes", 0, "mappings", 1, "column_id"), "pipes[0].mappings[1].columnId"),
    (("input", "keys", "keys", 2), "input.keys[2]"),
    (("input",), "input"),
    (("columns", 0, "type"), "columns[0].type"),
    (("created_at",), "createdAt"),
    ((), ""),
])
def test_a_location_becomes_a_camel_case_path(loc: tuple[str | int, ...],
                                              expected: str) -> None:
    assert json_path(loc) == expected


def test_names_that_are_not_fields_are_kept_as_written() -> None:
    assert json_path(("visual", "nodes", "my_node")) == "visual.nodes.my_node"
