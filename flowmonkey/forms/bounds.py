"""Bounds on a parsed submission: how deep it nests, how many values and fields it
holds, how long its keys are, and what characters it may carry.

A public endpoint parses what anyone sends, so every dimension a body can grow in is
bounded before anything else looks at it: the body's bytes (the form's
``maxBodyBytes``, checked while it streams), then, once parsed, the nesting depth,
the number of top-level fields, the number of values overall and the length of each
key. A NUL character (which PostgreSQL stores nowhere) is refused as a bad encoding.
The walk is iterative, so a hostile depth costs no stack.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 8
MAX_FIELDS = 200
MAX_VALUES = 2_000
MAX_KEY_CHARS = 200


@dataclass(frozen=True, slots=True)
class ParseBounds:
    """``max_depth``: containers inside the submission's object (a field holding a
    list of objects is depth 2); ``max_fields``: top-level fields; ``max_values``:
    every value at any depth; ``max_key_chars``: each key's length."""

    max_depth: int = MAX_DEPTH
    max_fields: int = MAX_FIELDS
    max_values: int = MAX_VALUES
    max_key_chars: int = MAX_KEY_CHARS


class BodyError(ValueError):
    """A body the endpoint refuses before looking at what it says: ``status`` (400,
    413 or 415) and a stable ``code``; the message names what is wrong, never quotes
    the body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str) -> BodyError:
    return BodyError(400, "INVALID_BODY", message)


_Frame = Iterator[tuple[Any, Any]]


def check_bounds(data: Mapping[str, Any], bounds: ParseBounds) -> None:
    """Raise :class:`BodyError` (400) for the first bound ``data`` exceeds."""
    if len(data) > bounds.max_fields:
        raise invalid(f"the submission has {len(data)} fields, more than "
                      f"{bounds.max_fields}")
    values = 0
    frames: list[tuple[_Frame, bool]] = [(iter(data.items()), True)]
    while frames:
        entries, keyed = frames[-1]
        for key, value in entries:
            values += 1
            if values > bounds.max_values:
                raise invalid(f"the submission holds more than {bounds.max_values} values")
            if keyed:
                _check_key(key, bounds)
            if isinstance(value, str):
                if "\x00" in value:
                    raise invalid("the submission holds a NUL character")
            elif isinstance(value, dict | list):
                if len(frames) > bounds.max_depth:
                    raise invalid(f"the submission nests deeper than {bounds.max_depth} "
                                  "levels")
                frames.append((iter(value.items()), True) if isinstance(value, dict)
                              else (enumerate(value), False))
                break
        else:
            frames.pop()


def _check_key(key: Any, bounds: ParseBounds) -> None:
    if not isinstance(key, str):  # JSON keys are strings; anything else is a caller's bug
        raise invalid("a key is not a string")
    if len(key) > bounds.max_key_chars:
        raise invalid(f"a key is longer than {bounds.max_key_chars} characters")
    if "\x00" in key:
        raise invalid("a key holds a NUL character")
