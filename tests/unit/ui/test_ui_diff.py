"""The explorer's diff of JSON-like values."""

from __future__ import annotations

from flowmonkey.api.ui.diff import Change, diff


def test_equal_values_have_no_changes() -> None:
    assert diff({"a": [1, 2], "b": {"c": None}}, {"a": [1, 2], "b": {"c": None}}).equal


def test_objects_are_compared_key_by_key_and_lists_whole() -> None:
    found = diff({"a": 1, "b": {"c": 1, "d": 2}, "l": [1]},
                 {"a": 1, "b": {"c": 2}, "e": "new", "l": [1, 2]})
    assert found.changes == (Change("b.c", "changed", 1, 2), Change("b.d", "removed", 2),
                             Change("e", "added", None, "new"),
                             Change("l", "changed", [1], [1, 2]))


def test_an_object_added_whole_is_listed_by_its_keys() -> None:
    found = diff({}, {"context": {"name": "Ada"}, "tags": {}})
    assert found.changes == (Change("context.name", "added", None, "Ada"),
                             Change("tags", "added", None, {}))


def test_a_type_change_is_a_change() -> None:
    assert diff({"n": 1}, {"n": "1"}).changes == (Change("n", "changed", 1, "1"),)
    assert diff({"n": True}, {"n": 1}).changes == (Change("n", "changed", True, 1),)


def test_the_changes_listed_are_bounded() -> None:
    found = diff({}, {f"k{i:03d}": i for i in range(300)}, limit=10)
    assert len(found.changes) == 10
    assert found.more
