"""Input selectors (A4) and dot paths (reads, copy-on-write writes)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.kernel.inputs import InputError, missing_input, resolve_input
from flowmonkey.kernel.paths import MISSING, get_path, set_path
from flowmonkey.model.selectors import (
    FullSelector,
    KeySelector,
    KeysSelector,
    PathSelector,
    StaticSelector,
    TemplateSelector,
)

CONTEXT: dict[str, Any] = {
    "user": {"name": "Ada", "age": 36, "tags": ["a", "b"], "address": {"city": "London"}},
    "count": 3,
    "flag": True,
    "nothing": None,
    "ratio": 2.0,
    "a.b": "literal dotted key",
}


# --------------------------------------------------------------------------- selectors


def test_key_selects_a_top_level_value() -> None:
    assert resolve_input(KeySelector(key="count"), CONTEXT) == 3


def test_key_takes_a_dot_literally() -> None:
    assert resolve_input(KeySelector(key="a.b"), CONTEXT) == "literal dotted key"


def test_a_missing_key_gives_none_and_is_named_by_missing_input() -> None:
    assert resolve_input(KeySelector(key="absent"), CONTEXT) is None
    assert missing_input(KeySelector(key="absent"), CONTEXT) == \
        "input key 'absent': the context has no such key"
    assert missing_input(KeySelector(key="nothing"), CONTEXT) is None  # present, null


def test_a_key_whose_value_is_null_gives_none() -> None:
    assert resolve_input(KeySelector(key="nothing"), CONTEXT) is None


def test_keys_selects_the_present_keys_only() -> None:
    selected = resolve_input(KeysSelector(keys=["count", "nothing", "absent"]), CONTEXT)

    assert selected == {"count": 3, "nothing": None}


def test_path_follows_dots_into_objects_and_lists() -> None:
    assert resolve_input(PathSelector(path="user.address.city"), CONTEXT) == "London"
    assert resolve_input(PathSelector(path="user.tags.1"), CONTEXT) == "b"


def test_a_missing_path_gives_none_and_missing_input_names_where_it_stops() -> None:
    assert resolve_input(PathSelector(path="user.nope.deeper"), CONTEXT) is None
    assert missing_input(PathSelector(path="user.nope.deeper"), CONTEXT) == \
        "input path 'user.nope.deeper': 'user' has no 'nope'"
    assert missing_input(PathSelector(path="order.id"), CONTEXT) == \
        "input path 'order.id': the context has no key 'order'"
    assert missing_input(PathSelector(path="user.tags.5"), CONTEXT) == \
        "input path 'user.tags.5': 'user.tags' has no '5'"
    assert missing_input(PathSelector(path="user.tags.1"), CONTEXT) is None


def test_full_gives_a_copy_of_the_context() -> None:
    selected = resolve_input(FullSelector(), CONTEXT)

    assert selected == CONTEXT
    assert selected is not CONTEXT


def test_static_gives_the_value_as_is() -> None:
    value = {"fixed": [1, 2]}

    assert resolve_input(StaticSelector(value=value), CONTEXT) == {"fixed": [1, 2]}


def test_an_unknown_selector_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown input selector"):
        resolve_input({"type": "key", "key": "x"}, CONTEXT)


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${count}", 3),
        ("${user}", CONTEXT["user"]),
        ("${user.tags}", ["a", "b"]),
        ("${flag}", True),
        ("${nothing}", None),
        ("${absent}", None),
    ],
)
def test_a_template_that_is_one_placeholder_keeps_the_values_type(
        template: str, expected: Any) -> None:
    assert resolve_input(TemplateSelector(template=template), CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello ${user.name}!", "Hello Ada!"),
        ("${user.name} is ${user.age}", "Ada is 36"),
        ("missing: [${absent}]", "missing: []"),
        ("null: ${nothing}", "null: null"),
        ("flag: ${flag}", "flag: true"),
        ("ratio: ${ratio}", "ratio: 2"),
        ("tags: ${user.tags}", 'tags: ["a","b"]'),
        ("no placeholders", "no placeholders"),
    ],
)
def test_a_longer_template_string_interpolates_as_text(template: str, expected: str) -> None:
    assert resolve_input(TemplateSelector(template=template), CONTEXT) == expected


def test_templates_apply_through_nested_objects_and_lists() -> None:
    template = {"to": "${user.name}", "meta": {"age": "${user.age}", "keep": 1},
                "list": ["${count}", "n=${count}", {"city": "${user.address.city}"}],
                "${count}": "keys are not interpolated"}

    resolved = resolve_input(TemplateSelector(template=template), CONTEXT)

    assert resolved == {"to": "Ada", "meta": {"age": 36, "keep": 1},
                        "list": [3, "n=3", {"city": "London"}],
                        "${count}": "keys are not interpolated"}


def test_template_non_string_leaves_pass_through() -> None:
    assert resolve_input(TemplateSelector(template=[1, None, True]), CONTEXT) == [1, None, True]


def test_selectors_accept_the_originals_json_shape() -> None:
    from flowmonkey.model.flow import Step

    step = Step.model_validate({"id": "s", "type": "t",
                                "input": {"type": "template", "template": "${count}"}})

    assert resolve_input(step.input, CONTEXT) == 3


# --------------------------------------------------------------------------- paths


def test_get_path_reads_nested_values_and_list_indexes() -> None:
    data = {"a": {"b": [10, {"c": 1}]}}

    assert get_path(data, "a.b.0") == 10
    assert get_path(data, "a.b.1.c") == 1
    assert get_path(data, "a.b.-1.c") == 1


@pytest.mark.parametrize("path", ["x", "a.x", "a.b.5", "a.b.x", "a.b.0.c"])
def test_get_path_gives_missing_or_the_default_when_absent(path: str) -> None:
    data = {"a": {"b": [10]}}

    assert get_path(data, path) is MISSING
    assert get_path(data, path, "default") == "default"


def test_get_path_distinguishes_none_from_missing() -> None:
    assert get_path({"a": None}, "a") is None
    assert get_path({"a": None}, "a.b") is MISSING


def test_set_path_creates_nested_objects() -> None:
    assert set_path({}, "a.b.c", 1) == {"a": {"b": {"c": 1}}}


def test_set_path_replaces_a_non_object_on_the_way() -> None:
    assert set_path({"a": 5}, "a.b", 1) == {"a": {"b": 1}}


def test_set_path_copies_on_write_and_leaves_the_original_untouched() -> None:
    original: dict[str, Any] = {"a": {"b": {"c": 1}, "sibling": {"s": 1}}, "top": [1]}

    updated = set_path(original, "a.b.d", 2)

    assert original == {"a": {"b": {"c": 1}, "sibling": {"s": 1}}, "top": [1]}
    assert updated == {"a": {"b": {"c": 1, "d": 2}, "sibling": {"s": 1}}, "top": [1]}
    assert updated is not original
    assert updated["a"] is not original["a"]
    assert updated["a"]["b"] is not original["a"]["b"]
    assert updated["a"]["sibling"] is original["a"]["sibling"]  # untouched branches are shared


def test_set_path_at_the_top_level_copies_the_dict() -> None:
    original = {"a": 1}

    updated = set_path(original, "b", 2)

    assert original == {"a": 1}
    assert updated == {"a": 1, "b": 2}
