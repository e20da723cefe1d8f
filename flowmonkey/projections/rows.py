"""Pure helpers shared by every projection backend: row validation, filters, cursors.

Rules every backend follows (the contract suite checks them):

* A row is an object whose keys are column ids of its table; unknown keys are refused
  (ignoring them would hide typos in pipe mappings).
* ``None`` means "no value": allowed for optional columns, refused for required ones.
* ``datetime`` values are stored as **epoch milliseconds** (int). ISO-8601 strings and
  ``datetime`` objects are accepted and normalised, so filters and ordering compare
  numbers in every backend; naive times are taken as UTC.
* Filters follow ``IS [NOT] DISTINCT FROM`` semantics for ``eq``/``neq`` (so ``eq None``
  finds missing values and ``neq x`` includes them); the ordering operators and ``like``
  never match a missing value or a value of another type. ``like`` is SQL LIKE
  (``%``, ``_``, ``\\`` escapes), case-sensitive, matched in linear time (no
  backtracking, see :class:`LikePattern`), with patterns of at most
  :data:`MAX_LIKE_PATTERN_LENGTH` (256) characters.
* Ordering puts missing values last when ascending and first when descending (SQL's
  default NULL placement); ties keep the order the rows were given in.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

import orjson

from flowmonkey.errors import FlowMonkeyError, TableError
from flowmonkey.model.tables import ColumnDef, TableDef

from .base import RowFilter, RowOrder

R = TypeVar("R")


class InvalidCursorError(FlowMonkeyError):
    """A pagination cursor that this projection did not hand out (or that was altered)."""

    code = "INVALID_CURSOR"


# --------------------------------------------------------------------------- validation


def validate_row(table: TableDef, data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """The row ``data`` checked against ``table`` and normalised (datetimes to epoch ms).

    With ``partial`` (an update), required columns may be absent, but still not None.
    Raises :class:`TableError` naming the table, the column and the problem.
    """
    if not isinstance(data, dict):
        raise TableError(f'table "{table.id}": a row must be an object, got '
                         f"{type(data).__name__}", table_id=table.id)
    columns = {c.id: c for c in table.columns}
    out: dict[str, Any] = {}
    for key, value in data.items():
        column = columns.get(key)
        if column is None:
            raise TableError(f'table "{table.id}": unknown column "{key}"',
                             table_id=table.id, column_id=key)
        out[key] = _checked(table, column, value)
    if not partial:
        for column in table.columns:
            if column.required and column.id not in out:
                raise TableError(f'table "{table.id}": column "{column.id}" is required',
                                 table_id=table.id, column_id=column.id)
    return out


def _checked(table: TableDef, column: ColumnDef, value: Any) -> Any:
    if value is None:
        if column.required:
            raise TableError(f'table "{table.id}": column "{column.id}" is required '
                             "and may not be null", table_id=table.id, column_id=column.id)
        return None
    kind = column.type
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "number":
        ok = _is_number(value)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "datetime":
        return _datetime_ms(table, column, value)
    else:  # json
        ok = _is_json(value)
    if not ok:
        raise TableError(
            f'table "{table.id}": column "{column.id}" expects {kind}, got '
            f"{_describe(value)}", table_id=table.id, column_id=column.id)
    return value


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True is not a number a user meant to store
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _datetime_ms(table: TableDef, column: ColumnDef, value: Any) -> int:
    ms = to_epoch_ms(value)
    if ms is None:
        raise TableError(
            f'table "{table.id}": column "{column.id}" expects datetime (epoch ms or '
            f"ISO-8601), got {_describe(value)}", table_id=table.id, column_id=column.id)
    return ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(value: Any) -> int | None:
    """Epoch ms from an int, an integral float, a ``datetime`` or an ISO-8601 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        when: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        # integer arithmetic: timestamp() * 1000 loses the last millisecond to rounding
        delta = when - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return None


# --------------------------------------------------------------------------- filters


def prepare_filters(table: TableDef, filters: Sequence[RowFilter]) -> list[RowFilter]:
    """Filters checked against ``table`` (known columns, sane values), with datetime
    values normalised to epoch ms like the stored ones."""
    out: list[RowFilter] = []
    for f in filters:
        column = table.column(f.column)
        if column is None:
            raise TableError(f'table "{table.id}": cannot filter on unknown column '
                             f'"{f.column}"', table_id=table.id, column_id=f.column)
        value = f.value
        if f.op == "in":
            if not isinstance(value, list | tuple | set | frozenset):
                raise TableError(f'table "{table.id}": filter "in" on "{f.column}" needs a '
                                 f"list, got {_describe(value)}", table_id=table.id,
                                 column_id=f.column)
            value = [_filter_value(table, column, v) for v in value]
        elif f.op == "like":
            if not isinstance(value, str):
                raise TableError(f'table "{table.id}": filter "like" on "{f.column}" needs '
                                 f"a string, got {_describe(value)}", table_id=table.id,
                                 column_id=f.column)
            if len(value) > MAX_LIKE_PATTERN_LENGTH:
                raise TableError(f'table "{table.id}": filter "like" on "{f.column}" is '
                                 f"{len(value)} characters long (max "
                                 f"{MAX_LIKE_PATTERN_LENGTH})", table_id=table.id,
                                 column_id=f.column)
        else:
            value = _filter_value(table, column, value)
        out.append(f if value is f.value else RowFilter(column=f.column, op=f.op, value=value))
    return out


def _filter_value(table: TableDef, column: ColumnDef, value: Any) -> Any:
    if column.type != "datetime" or value is None:
        return value
    return _datetime_ms(table, column, value)


def check_order(table: TableDef, order: RowOrder | None) -> None:
    if order is not None and table.column(order.column) is None:
        raise TableError(f'table "{table.id}": cannot order by unknown column '
                         f'"{order.column}"', table_id=table.id, column_id=order.column)


def matches(row_data: dict[str, Any], filters: Sequence[RowFilter]) -> bool:
    """Whether a row's data passes every filter (see the module docstring for NULLs)."""
    return all(_match(row_data.get(f.column), f.op, f.value) for f in filters)


def _match(actual: Any, op: str, expected: Any) -> bool:
    if op == "eq":
        return _same(actual, expected)
    if op == "neq":
        return not _same(actual, expected)
    if op == "in":
        return any(_same(actual, e) for e in expected)
    if actual is None:
        return False
    if op == "like":
        return isinstance(actual, str) and compile_like(expected).matches(actual)
    if expected is None or isinstance(actual, bool) != isinstance(expected, bool):
        return False
    try:
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
    except TypeError:  # a string compared with a number: no match, as in SQL on jsonb
        return False
    raise TableError(f"unknown filter op {op!r}")


def _same(a: Any, b: Any) -> bool:
    # Python says True == 1; a boolean column and a number column are not equal here
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


MAX_LIKE_PATTERN_LENGTH = 256
"""The longest ``like`` pattern a filter may hold, in characters."""


class LikePattern:
    """SQL LIKE, matched in linear time: ``%`` any run, ``_`` one character, ``\\``
    escapes the next (a trailing lone backslash stands for itself).

    A regex made of ``.*`` per ``%`` backtracks: ``%%%%…x`` against a long text took
    seconds per row on the event loop. Here the pattern is split at its ``%`` into
    fixed-width segments; the first must match at the start, the last at the end and
    each one between at its leftmost place after the previous one. A leftmost match
    is always the best choice (it ends earliest and the segments have fixed widths),
    so nothing is ever retried: at most one scan of the text per segment, i.e.
    O(len(text) * len(pattern)) in the worst case and one ``str.find`` per segment
    in the usual one (segments without ``_``).
    """

    __slots__ = ("_anchored", "_head", "_middle", "_tail")

    def __init__(self, pattern: str) -> None:
        segments: list[list[str | None]] = [[]]  # None stands for `_`
        escaped = False
        for ch in pattern:
            if escaped:
                segments[-1].append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == "%":
                segments.append([])
            else:
                segments[-1].append(None if ch == "_" else ch)
        if escaped:
            segments[-1].append("\\")
        parts = [_Segment(s) for s in segments]
        # without any `%` the one segment must cover the whole text
        self._anchored = len(parts) == 1
        self._head = parts[0]
        self._tail = parts[-1]
        self._middle = [p for p in parts[1:-1] if p.width]  # `%%` is one `%`

    def matches(self, text: str) -> bool:
        head, tail = self._head, self._tail
        if self._anchored:
            return len(text) == head.width and head.at(text, 0)
        end = len(text) - tail.width
        if end < head.width or not head.at(text, 0) or not tail.at(text, end):
            return False
        position = head.width
        for segment in self._middle:
            found = segment.find(text, position, end)
            if found < 0:
                return False
            position = found + segment.width
        return True


class _Segment:
    """A fixed-width run of a LIKE pattern: characters and ``_`` (None)."""

    __slots__ = ("_literal", "_regex", "width")

    def __init__(self, chars: list[str | None]) -> None:
        self.width = len(chars)
        self._literal: str | None = None
        self._regex: re.Pattern[str] | None = None
        if None in chars:
            # Literals and `.` only: no quantifier, group or alternation, so the regex
            # engine tries each start position once, in at most `width` steps, and never
            # backtracks across positions (linear, unlike the `.*` of a `%`).
            self._regex = re.compile(
                "".join("." if c is None else re.escape(c) for c in chars), re.DOTALL)
        else:
            self._literal = "".join(c for c in chars if c is not None)

    def at(self, text: str, start: int) -> bool:
        """Whether the segment matches ``text`` at ``start``."""
        if self._regex is None:
            return text.startswith(self._literal or "", start)
        return self._regex.match(text, start, start + self.width) is not None

    def find(self, text: str, start: int, end: int) -> int:
        """The leftmost position ``p >= start`` where the segment matches and ends by
        ``end``, or -1."""
        if self._regex is None:
            return text.find(self._literal or "", start, end)
        found = self._regex.search(text, start, end)
        return -1 if found is None else found.start()


@lru_cache(maxsize=256)
def compile_like(pattern: str) -> LikePattern:
    """The :class:`LikePattern` for ``pattern`` (cached: a query tests it on each row)."""
    return LikePattern(pattern)


# --------------------------------------------------------------------------- ordering


def sort_rows(
    rows: Sequence[R], order: RowOrder, *, data: Callable[[R], dict[str, Any]]
) -> list[R]:
    """``rows`` sorted by one column; stable, so ties keep the given order."""
    column = order.column

    def key(row: R) -> tuple[bool, int, Any]:
        return sort_key(data(row).get(column))

    # reverse=True keeps equal elements in their original order, and flips None to first
    return sorted(rows, key=key, reverse=order.direction == "desc")


def sort_key(value: Any) -> tuple[bool, int, Any]:
    """A total order over column values: None last, then grouped by JSON type so that a
    json column holding mixed types still sorts instead of raising."""
    if value is None:
        return (True, 0, 0)
    if isinstance(value, bool):
        return (False, 1, value)
    if isinstance(value, int | float):
        return (False, 0, value)
    if isinstance(value, str):
        return (False, 2, value)
    return (False, 3, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


# --------------------------------------------------------------------------- cursors


def encode_cursor(created_at_ms: int, id: str) -> str:
    """An opaque cursor for "after the item created at ``created_at_ms`` with ``id``"."""
    raw = orjson.dumps([created_at_ms, id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (created_at ms, id) in a cursor; :class:`InvalidCursorError` when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError):
        value = None
    # created_at within a bigint: PostgreSQL would refuse the parameter (an error, not a page)
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and not isinstance(value[0], bool) and -(2**63) <= value[0] < 2**63
            and isinstance(value[1], str)):
        return value[0], value[1]
    raise InvalidCursorError(f"invalid pagination cursor {cursor[:40]!r}: pass back the "
                             "next_cursor of a previous page unchanged")
