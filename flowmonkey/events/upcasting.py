"""Upcasters: old event versions rewritten into the current shape, in one place.

The log is forever, so an event's meaning never changes: a new shape gets a new
version and an upcaster from the previous one. Register ``(type, from_version)`` ->
function returning the event dict at ``from_version + 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[Any, Any], Upcaster] = {}


def upcaster(type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(type, from_version)] = fn
        return fn
    return register


@upcaster("execution.cancelled", 0)
def _cancelled_v0(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 0 (pre-release) named the counters in camelCase."""
    data = dict(raw.get("data") or {})
    for old, new in (("tokensInvalidated", "tokens_invalidated"),
                     ("childrenCancelled", "children_cancelled")):
        if old in data:
            data[new] = data.pop(old)
    return {**raw, "version": 1, "data": data}
