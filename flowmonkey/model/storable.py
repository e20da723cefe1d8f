"""What a request body may hold: only values the log and the projection can carry.

A body is parsed by Python's JSON reader, which accepts more than FlowMonkey can
store: ``"\\ud800"`` decodes to a lone surrogate that orjson (the log's codec) and
PostgreSQL refuse, ``NaN`` and integers past 64 bits that orjson refuses or turns
into ``null``, NUL characters that PostgreSQL text and jsonb refuse, and nesting as
deep as the reader's stack (orjson encodes 254 levels at most). Left alone, such a
value fails when the command is encoded (a 500) or, worse, when a projector stores
it. :func:`check_body` finds the first such value and names it by its path, so the
request is a 422 that says which field to fix.

Nesting is bounded like an execution's context: a body field is an object of values
that nest at most ``max_depth`` levels (the engine's ``ContextLimits.max_depth``),
so the field itself at most ``max_depth + 1``. The limit of the engine that serves
the request is in :data:`body_max_depth` (set by the app for each request).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from flowmonkey.model.limits import DEFAULT_MAX_DEPTH

#: the nesting limit of the request being served: the serving engine's
#: ``ContextLimits.max_depth`` (see :class:`flowmonkey.api.body_limit.BodyLimit`)
body_max_depth: ContextVar[int] = ContextVar("body_max_depth", default=DEFAULT_MAX_DEPTH)

#: orjson encodes at most 254 levels, and a command wraps a body's values in a few of
#: its own: no engine limit lets more than this through
LOG_MAX_DEPTH = 200

# orjson encodes integers in this range only; a larger one would fail at publication
_INT_RANGE = (-(2**63), 2**64 - 1)
# PostgreSQL stores no NUL in text or jsonb: one in a context would make the projection
# fail the whole batch (every tenant's events with it) instead of refusing one request.
_NUL = "\x00"
# a path names a field, it does not quote the body back: long names are cut
_NAME_CHARS = 64
_PATH_CHARS = 512


#: the pydantic error type of such a value (its ``ctx`` holds ``field`` and ``reason``)
UNSTORABLE = "unstorable_value"


class UnstorableValue(ValueError):
    """A body value the log or the projection cannot carry, at ``path``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def printable(name: str, max_chars: int | None = _NAME_CHARS) -> str:
    """``name`` as an error can show it: lone surrogates and NULs escaped, cut to
    ``max_chars`` (None: not cut)."""
    if max_chars is not None and len(name) > max_chars:
        name = name[:max_chars] + "..."
    if name.isascii() and _NUL not in name:
        return name
    return name.encode("utf-8", "backslashreplace").decode("utf-8").replace(_NUL, "\\u0000")


def _join(path: str, key: str) -> str:
    name = printable(key)
    joined = f"{path}.{name}" if path else name
    return joined if len(joined) <= _PATH_CHARS else "..." + joined[-_PATH_CHARS:]


def _string_problem(text: str) -> str | None:
    if _NUL in text:
        return "a NUL character (\\u0000) cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (such as \\ud800) is not valid Unicode text"
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return _string_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        return "integer out of the 64-bit range"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a JSON number"
    return None


def check_body(fields: Mapping[str, Any], max_depth: int | None = None) -> None:
    """Raise :class:`UnstorableValue` for the first value in ``fields`` (a body's
    fields, by their JSON names), in document order, that cannot be stored as given.

    A walk with one iterator per open container: the stack holds at most the depth
    limit's frames however deep the body, and nothing is built per value (a body of
    millions of small values costs no memory beyond itself; a value's path is
    written only for an error). Plain JSON types are told by ``type() is``, the
    cheapest test, as the body is walked value by value."""
    limit = min(body_max_depth.get() if max_depth is None else max_depth, LOG_MAX_DEPTH)
    low, high = _INT_RANGE
    # each open container: (its key in its parent, its entries, whether keyed); the
    # entries of frames[d] are at depth d - 1 (a field's value is at depth 0)
    frames: list[_Frame] = [(None, iter(fields.items()), True)]
    while frames:
        _, entries, keyed = frames[-1]
        depth = len(frames) - 1
        for key, value in entries:
            if keyed and (type(key) is not str or not key.isascii() or _NUL in key) \
                    and (problem := _string_problem(str(key))) is not None:
                raise UnstorableValue(_path(frames, key), f"the key: {problem}")
            kind = type(value)
            if kind is str:
                if (_NUL in value or not value.isascii()) \
                        and (problem := _string_problem(value)) is not None:
                    raise UnstorableValue(_path(frames, key), problem)
            elif kind is int:
                if not low <= value <= high:
                    raise UnstorableValue(_path(frames, key), "integer out of the 64-bit "
                                                              "range")
            elif kind is float:
                if not math.isfinite(value):
                    raise UnstorableValue(_path(frames, key), f"{value} is not a JSON "
                                                              "number")
            elif kind is dict or kind is list or isinstance(value, dict | list | tuple):
                if depth > limit:
                    raise UnstorableValue(_path(frames, key), f"nests deeper than the "
                                          f"limit: a field's values may nest {limit} levels")
                if isinstance(value, dict):
                    frames.append((key, iter(value.items()), True))
                else:
                    frames.append((key, enumerate(value), False))
                break  # into the container; this one's iterator resumes after it
            elif kind is not bool and value is not None:
                # a subclass of str or int, in a body built in Python rather than parsed
                problem = _scalar_problem(value)
                if problem is not None:
                    raise UnstorableValue(_path(frames, key), problem)
        else:
            frames.pop()


_Frame = tuple[Any, Iterator[tuple[Any, Any]], bool]


def _path(frames: list[_Frame], key: Any) -> str:
    """The path of the entry ``key`` of the innermost open container."""
    path = ""
    parents = [frame[0] for frame in frames[1:]] + [key]
    for (_, _, keyed), name in zip(frames, parents, strict=True):
        path = _join(path, str(name)) if keyed else f"{path}[{name}]"
    return path
