"""Dot-path reads and copy-on-write writes over plain JSON-like data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MISSING: Any = object()


def get_path(data: Any, path: str, default: Any = MISSING) -> Any:
    """``a.b.0.c`` into nested dicts and lists; ``default`` (or MISSING) when absent."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return default
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(current) <= index < len(current):
                return default
            current = current[index]
        else:
            return default
    return current


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A new dict equal to ``data`` with ``value`` at ``path``; parents are created as
    dicts and copied (never mutated), so earlier states that share them stay intact."""
    head, _, rest = path.partition(".")
    if not rest:
        return {**data, head: value}
    child = data.get(head)
    child_dict: dict[str, Any] = dict(child) if isinstance(child, Mapping) else {}
    return {**data, head: set_path(child_dict, rest, value)}
