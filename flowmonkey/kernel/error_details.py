"""Error details kept in events, bounded in depth and size.

A failed child's error becomes the details of its parent's ``CHILD_FAILED``, whose
error becomes the details of the grandparent's, and so on: a chain of sub-flows nests
one level per ancestor. Unbounded, a deep chain (a flow calling itself) produced
details too deep for the encoder (orjson stops at 254 levels), and one failed command
stopped its partition. So every error the kernel writes into an event passes through
:func:`bounded_error`:

- nesting past :data:`MAX_DETAILS_DEPTH` (8) levels is replaced by :data:`TRUNCATED`
  (the newest causes are kept, the oldest ones cut), and an object or list keeps
  its first 256 entries;
- details whose JSON is over :data:`MAX_DETAILS_BYTES` (16 KiB) are replaced by
  ``{"truncated": true, "bytes": <size>, "preview": <the JSON's first 1,000 characters>}``;
- a value JSON cannot carry (a lone surrogate, a float NaN, an object) is replaced by
  its ``repr`` (so a handler's odd details never fail the event that reports them);
- a message is cut at :data:`MAX_MESSAGE_CHARS` characters.

Pure and deterministic: replaying the same decision bounds the same way.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

MAX_DETAILS_DEPTH = 8
"""Levels of nesting kept in an error's details (an error nested in a parent's
details counts one level per ancestor)."""
MAX_DETAILS_BYTES = 16 * 1024
"""JSON size of an error's details, at most."""
MAX_MESSAGE_CHARS = 2_000
"""Characters of an error message, at most."""
TRUNCATED = "…(truncated: nested deeper than 8 levels)"
_PREVIEW_CHARS = 1_000
# more entries than this in one dict or list are cut too (the size bound would drop
# them anyway; this keeps the walk itself bounded)
_MAX_ENTRIES = 256


def bounded_details(value: Any) -> Any:
    """``value`` cut to the depth and size bounds, always JSON-encodable."""
    pruned = _prune(value, MAX_DETAILS_DEPTH)
    try:
        encoded = orjson.dumps(pruned)
    except (TypeError, orjson.JSONEncodeError):  # pragma: no cover - _prune prevents it
        return {"truncated": True, "preview": _text(repr(pruned))[:_PREVIEW_CHARS]}
    if len(encoded) <= MAX_DETAILS_BYTES:
        return pruned
    return {"truncated": True, "bytes": len(encoded),
            "preview": encoded[:_PREVIEW_CHARS * 4].decode("utf-8", "ignore")[:_PREVIEW_CHARS]}


def bounded_message(message: Any) -> str:
    text = _text(message if isinstance(message, str) else str(message))
    if len(text) > MAX_MESSAGE_CHARS:
        return text[:MAX_MESSAGE_CHARS] + "…(truncated)"
    return text


def bounded_error(error: dict[str, Any]) -> dict[str, Any]:
    """An error dict (``code``, ``message``, ``details`` …) with its message and details
    bounded; other fields are kept as they are (the kernel builds them)."""
    out = dict(error)
    if "message" in out:
        out["message"] = bounded_message(out["message"])
    if out.get("details") is not None:
        out["details"] = bounded_details(out["details"])
    return out


def _prune(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return _text(value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        if depth <= 0:
            return TRUNCATED
        items = list(value.items())[:_MAX_ENTRIES]
        return {_text(k) if isinstance(k, str) else _text(repr(k)): _prune(v, depth - 1)
                for k, v in items}
    if isinstance(value, list | tuple):
        if depth <= 0:
            return TRUNCATED
        return [_prune(v, depth - 1) for v in list(value)[:_MAX_ENTRIES]]
    if isinstance(value, str):  # a str subclass: as text
        return _text(str(value))
    if isinstance(value, int):
        return int(value)
    return _text(repr(value))[:_PREVIEW_CHARS]


def _text(value: str) -> str:
    """``value`` with lone surrogates (which JSON encoders refuse) escaped as text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


__all__ = ["MAX_DETAILS_BYTES", "MAX_DETAILS_DEPTH", "MAX_MESSAGE_CHARS", "TRUNCATED",
           "bounded_details", "bounded_error", "bounded_message"]
