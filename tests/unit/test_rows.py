"""Row validation, filtering, ordering and cursors shared by the projection backends."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from flowmonkey.errors import TableError
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.projections.base import FilterOp, RowFilter, RowOrder
from flowmonkey.projections.rows import (
    InvalidCursorError,
    check_order,
    compile_like,
    decode_cursor,
    encode_cursor,
    matches,
    prepare_filters,
    sort_rows,
    to_epoch_ms,
    validate_row,
)

T0 = 1_700_000_000_000
TABLE = TableDef(id="people", columns=[
    ColumnDef(id="name", type="string", required=True),
    ColumnDef(id="age", type="number"),
    ColumnDef(id="active", type="boolean"),
    ColumnDef(id="born", type="datetime"),
    ColumnDef(id="extra", type="json"),
])

# --- validate_row -----------------------------------------------------------------------


def test_a_valid_row_comes_back_unchanged() -> None:
    row = {"name": "ada", "age": 36.5, "active": True, "born": T0, "extra": {"a": [1, None]}}
    assert validate_row(TABLE, row) == row


def test_optional_columns_may_be_absent_or_null() -> None:
    assert validate_row(TABLE, {"name": "ada", "age": None}) == {"name": "ada", "age": None}


@pytest.mark.parametrize("value", ["2023-11-14T22:13:20+00:00", "2023-11-14T22:13:20Z",
                                   "2023-11-14T22:13:20", "2023-11-14T23:13:20+01:00",
                                   datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), T0,
                                   float(T0)])
def test_a_datetime_is_normalised_to_epoch_ms(value: Any) -> None:
    assert validate_row(TABLE, {"name": "a", "born": value})["born"] == T0


def test_epoch_ms_keeps_the_millisecond_exactly() -> None:
    when = datetime(2023, 11, 14, 22, 13, 20, 999_999, tzinfo=timezone(timedelta(hours=-3)))
    assert to_epoch_ms(when) == T0 + 3 * 3_600_000 + 999


@pytest.mark.parametrize(("row", "words"), [
    ({}, ['"people"', '"name"', "required"]),
    ({"name": None}, ['"name"', "null"]),
    ({"name": 1}, ['"name"', "expects string", "int"]),
    ({"name": "a", "age": "3"}, ['"age"', "expects number", "str"]),
    ({"name": "a", "age": False}, ['"age"', "expects number", "bool"]),
    ({"name": "a", "age": float("nan")}, ['"age"', "expects number"]),
    ({"name": "a", "active": "yes"}, ['"active"', "expects boolean"]),
    ({"name": "a", "born": "soon"}, ['"born"', "expects datetime"]),
    ({"name": "a", "born": True}, ['"born"', "expects datetime"]),
    ({"name": "a", "born": 1.5}, ['"born"', "expects datetime"]),
    ({"name": "a", "extra": {1: "x"}}, ['"extra"', "expects json"]),
    ({"name": "a", "extra": object()}, ['"extra"', "expects json"]),
    ({"name": "a", "nick": "x"}, ['"people"', "unknown column", '"nick"']),
])
def test_an_invalid_row_is_refused_with_a_message_naming_table_and_column(
    row: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(TableError) as caught:
        validate_row(TABLE, row)
    for word in words:
        assert word in caught.value.message


def test_a_row_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(TableError, match="object"):
        validate_row(TABLE, ["ada"])  # type: ignore[arg-type]


def test_a_partial_row_may_leave_out_required_columns_but_not_null_them() -> None:
    assert validate_row(TABLE, {"age": 3}, partial=True) == {"age": 3}
    with pytest.raises(TableError, match="name"):
        validate_row(TABLE, {"name": None}, partial=True)
    with pytest.raises(TableError, match="age"):
        validate_row(TABLE, {"age": "x"}, partial=True)


# --- filters ------------------------------------------------------------------------------


def _f(column: str, op: FilterOp, value: Any) -> RowFilter:
    return RowFilter(column=column, op=op, value=value)


@pytest.mark.parametrize(("op", "value", "actual", "expected"), [
    ("eq", 1, 1, True),
    ("eq", 1, 2, False),
    ("eq", 1, True, False),
    ("eq", True, 1, False),
    ("eq", None, None, True),
    ("neq", 1, None, True),
    ("neq", 1, 1, False),
    ("gt", 1, 2, True),
    ("gt", 2, 2, False),
    ("gte", 2, 2, True),
    ("lt", 2, 1, True),
    ("lte", 2, 2, True),
    ("lte", 2, 3, False),
    ("gt", 1, None, False),
    ("gt", 1, "a", False),
    ("lt", None, 1, False),
    ("gt", 0, True, False),
    ("in", [1, 2], 2, True),
    ("in", [1, 2], 3, False),
    ("in", [None], None, True),
    ("in", [1], True, False),
    ("like", "a%", "abc", True),
    ("like", "a%", "Abc", False),
    ("like", "a_c", "abc", True),
    ("like", "a_c", "abbc", False),
    ("like", "%.%", "a.b", True),
    ("like", "%.%", "ab", False),
    ("like", "100\\%", "100%", True),
    ("like", "100\\%", "1000", False),
    ("like", "a%", None, False),
    ("like", "1%", 10, False),
])
def test_a_filter_matches_like_sql(op: FilterOp, value: Any, actual: Any,
                                   expected: bool) -> None:
    assert matches({"x": actual}, [_f("x", op, value)]) is expected


def test_a_missing_value_behaves_as_null() -> None:
    assert matches({}, [_f("x", "eq", None)])
    assert matches({}, [_f("x", "neq", 1)])
    assert not matches({}, [_f("x", "gte", 0)])


def test_all_filters_must_match() -> None:
    row = {"a": 1, "b": "x"}
    assert matches(row, [_f("a", "eq", 1), _f("b", "like", "x")])
    assert not matches(row, [_f("a", "eq", 1), _f("b", "eq", "y")])
    assert matches(row, [])


def test_like_percent_spans_newlines() -> None:
    assert compile_like("a%b").matches("a\nb")


def test_prepared_filters_normalise_datetimes_like_stored_values() -> None:
    [f, g] = prepare_filters(TABLE, [_f("born", "gte", "2023-11-14T22:13:20Z"),
                                    _f("born", "in", ["2023-11-14T22:13:20Z", T0 + 1])])
    assert f.value == T0
    assert g.value == [T0, T0 + 1]


@pytest.mark.parametrize(("bad", "words"), [
    (_f("nick", "eq", "x"), ["unknown column", '"nick"']),
    (_f("age", "in", 3), ['"in"', "list"]),
    (_f("name", "like", 3), ['"like"', "string"]),
    (_f("born", "lt", "soon"), ['"born"', "datetime"]),
])
def test_a_filter_that_cannot_apply_to_the_table_is_refused(bad: RowFilter,
                                                            words: list[str]) -> None:
    with pytest.raises(TableError) as caught:
        prepare_filters(TABLE, [bad])
    for word in words:
        assert word in caught.value.message


def test_ordering_by_an_unknown_column_is_refused() -> None:
    check_order(TABLE, RowOrder(column="age"))
    check_order(TABLE, None)
    with pytest.raises(TableError, match="nick"):
        check_order(TABLE, RowOrder(column="nick"))


# --- ordering -----------------------------------------------------------------------------


def _sorted(values: list[Any], direction: Any = "asc") -> list[Any]:
    rows = [{"i": i, "v": v} for i, v in enumerate(values)]
    out = sort_rows(rows, RowOrder(column="v", direction=direction), data=lambda r: r)
    return [r["i"] for r in out]


def test_sorting_puts_nulls_last_ascending_and_first_descending() -> None:
    assert _sorted([3, None, 1, 2]) == [2, 3, 0, 1]
    assert _sorted([3, None, 1, 2], "desc") == [1, 0, 3, 2]


def test_sorting_keeps_the_given_order_for_ties_in_both_directions() -> None:
    assert _sorted([1, 0, 1, 0]) == [1, 3, 0, 2]
    assert _sorted([1, 0, 1, 0], "desc") == [0, 2, 1, 3]


def test_sorting_a_json_column_with_mixed_types_does_not_fail() -> None:
    assert _sorted(["b", {"a": 1}, 2, True, [1], None, "a", 1.5]) == [7, 2, 3, 6, 0, 4, 1, 5]


def test_strings_sort_by_code_point() -> None:
    assert _sorted(["b", "B", "a"]) == [1, 2, 0]


# --- cursors ------------------------------------------------------------------------------


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    cursor = encode_cursor(T0, "exec/ü?&=")
    assert decode_cursor(cursor) == (T0, "exec/ü?&=")
    assert all(c.isalnum() or c in "-_" for c in cursor)


@pytest.mark.parametrize("bad", [
    "", "!!!", "not base64 at all", base64.urlsafe_b64encode(b"{}").decode(),
    base64.urlsafe_b64encode(b'["1", "x"]').decode(),
    base64.urlsafe_b64encode(b"[true, \"x\"]").decode(),
    base64.urlsafe_b64encode(b"[1, 2]").decode(), "ünïcode",
])
def test_a_bad_cursor_is_refused_with_a_clear_error(bad: str) -> None:
    with pytest.raises(InvalidCursorError, match="invalid pagination cursor"):
        decode_cursor(bad)
