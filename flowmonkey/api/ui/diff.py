"""What changed between two JSON-like values: the explorer's diff of an execution's
state from one event to the next, and of the projection against the log.

Objects are compared key by key, down to :data:`MAX_DEPTH`; lists and other values as
a whole. At most ``limit`` changes are listed (the caller says when there were more).
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


def diff(before: Any, after: Any, *, limit: int = MAX_CHANGES) -> Diff:
    """The changes that turn ``before`` into ``after``, in path order."""
    found: list[Change] = []
    more = False

    def walk(path: str, a: Any, b: Any, depth: int) -> None:
        nonlocal more
        if more:
            return
        if isinstance(a, Mapping) and isinstance(b, Mapping) and depth < MAX_DEPTH:
            for key in sorted(set(a) | set(b), key=str):
                walk(_key(path, str(key)), a.get(key, _ABSENT), b.get(key, _ABSENT),
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
