"""What changed between two JSON-like values: the explorer's diff of an execution's
state from one event to the next, and of the projection against the log.

Objects are compared key by key, down to :data:`MAX_DEPTH` (an object added or removed
whole is listed key by key too); lists and other values as a whole. At most ``limit``
changes are listed (the caller says when there were more).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_DEPTH = 12
MAX_CHANGES = 200

Kind = Literal["added", "removed", "changed"]
_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    kind: Kind
    before: Any = None
    after: Any = None


@dataclass(frozen=True, slots=True)
class Diff:
    changes: tuple[Change, ...]
    more: bool = False
    """More changes than were listed."""

    @property
    def equal(self) -> bool:
        return not self.changes


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(value: Any, other: Any) -> bool:
    """``value`` is walked key by key: an object, or absent beside a non-empty one."""
    if isinstance(value, Mapping):
        return bool(value) or isinstance(other, Mapping)
    return value is _ABSENT and isinstance(other, Mapping) and bool(other)


def diff(before: Any, after: Any, *, limit: int = MAX_CHANGES) -> Diff:
    """The changes that turn ``before`` into ``after``, in path order."""
    found: list[Change] = []
    more = False

    def walk(path: str, a: Any, b: Any, depth: int) -> None:
        nonlocal more
        if more:
            return
        if depth < MAX_DEPTH and _object(a, b) and _object(b, a):
            # an object added or removed whole is listed by its keys, as a changed one
            left = a if isinstance(a, Mapping) else {}
            right = b if isinstance(b, Mapping) else {}
            for key in sorted(set(left) | set(right), key=str):
                walk(_key(path, str(key)), left.get(key, _ABSENT), right.get(key, _ABSENT),
                     depth + 1)
            return
        if a is _ABSENT and b is _ABSENT:
            return
        if a is _ABSENT:
            change = Change(path, "added", None, b)
        elif b is _ABSENT:
            change = Change(path, "removed", a, None)
        elif type(a) is type(b) and a == b:
            return
        else:
            change = Change(path, "changed", a, b)
        if len(found) >= limit:
            more = True
            return
        found.append(change)

    walk("", before, after, 0)
    return Diff(tuple(found), more)
