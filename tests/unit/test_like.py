"""``like`` row filters: SQL LIKE semantics, in linear time (issue 10, finding 11)."""

from __future__ import annotations

import time
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmonkey.errors import TableError
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.projections.base import RowFilter
from flowmonkey.projections.rows import (
    MAX_LIKE_PATTERN_LENGTH,
    compile_like,
    matches,
    prepare_filters,
)


def reference_like(pattern: str, text: str) -> bool:
    """SQL LIKE by dynamic programming over (pattern token, text position): obviously
    right, quadratic, for comparison only."""
    tokens: list[str | None] = []  # None is `%`, "" is `_`, else a literal character
    escaped = False
    for ch in pattern:
        if escaped:
            tokens.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            tokens.append(None if ch == "%" else "" if ch == "_" else ch)
    if escaped:
        tokens.append("\\")

    @cache
    def match(t: int, i: int) -> bool:
        if t == len(tokens):
            return i == len(text)
        token = tokens[t]
        if token is None:
            return match(t + 1, i) or (i < len(text) and match(t, i + 1))
        if i == len(text):
            return False
        return (token == "" or token == text[i]) and match(t + 1, i + 1)

    return match(0, 0)


@settings(max_examples=2000, deadline=None)
@given(pattern=st.text(alphabet="ab%_\\\n", max_size=12),
       text=st.text(alphabet="ab%_\\\nA", max_size=12))
def test_like_agrees_with_the_reference_sql_like(pattern: str, text: str) -> None:
    assert compile_like(pattern).matches(text) is reference_like(pattern, text)


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("", "", True), ("", "a", False), ("%", "", True), ("_", "", False),
    ("a%", "abc", True), ("a%", "Abc", False), ("%c", "abc", True), ("%b%", "abc", True),
    ("a_c", "abc", True), ("a_c", "ac", False), ("%a_a%", "xaya", True),
    ("a%a", "a", False), ("a%%a", "aa", True), ("\\%", "%", True), ("\\%", "a", False),
    ("\\_", "_", True), ("\\_", "a", False), ("\\\\", "\\", True), ("a\\", "a\\", True),
    ("%é_", "café!", True), ("%", "\n", True), ("_", "\n", True),
])
def test_like_examples(pattern: str, text: str, expected: bool) -> None:
    assert compile_like(pattern).matches(text) is expected


@pytest.mark.parametrize(("pattern", "text"), [
    ("%" * 24 + "x", "a" * 100_000),                      # the reported one, longer text
    ("%a" * 120 + "%x", "a" * 100_000),                   # many segments that all occur
    ("%" + "a_" * 120 + "x%", "a" * 100_000),             # `_` segments that almost match
    ("_" * 128 + "%" + "_" * 127, "a" * 100_000),
])
def test_like_takes_linear_time_on_patterns_that_backtrack_as_regexes(
        pattern: str, text: str) -> None:
    started = time.perf_counter()
    compile_like(pattern).matches(text)
    assert time.perf_counter() - started < 0.2


def test_a_like_pattern_longer_than_the_limit_is_refused() -> None:
    table = TableDef(id="t", columns=[ColumnDef(id="c", type="string")])
    ok = "%" * MAX_LIKE_PATTERN_LENGTH
    assert prepare_filters(table, [RowFilter(column="c", op="like", value=ok)])
    with pytest.raises(TableError, match="characters long"):
        prepare_filters(table, [RowFilter(column="c", op="like", value=ok + "%")])


def test_like_matches_only_strings() -> None:
    assert not matches({"c": 10}, [RowFilter(column="c", op="like", value="%")])
    assert matches({"c": ""}, [RowFilter(column="c", op="like", value="%")])
