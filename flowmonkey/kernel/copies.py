"""Private copies of JSON-like values, so that no two owners share a mutable object.

Execution state changes only through events. A value that crosses an ownership
boundary — from an event into a state, from a state to a handler, from a projection
to a caller — is copied there, so that whatever one owner does to its objects never
reaches another's: a handler that changes its input, or a caller that changes the
context of the execution ``get`` returned, changes nothing the engine keeps.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson

from flowmonkey.events.envelope import Event, trusted_event

_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes})
# what JSON gives back as it was (a float may not: NaN and infinities become null)
_FLAT = frozenset({str, int, bool, type(None)})


def _as_json(value: Any) -> Any:
    # as the log's encoder writes a pydantic model (events.codec)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot encode {type(value).__name__}")


def private_copy(value: Any) -> Any:
    """A deep copy of ``value`` that shares no mutable object with it, as the log
    gives a value back: tuples become lists, datetimes and models their JSON.

    So the state an event leaves is the same whether the event was just decided or
    read back from the log. A JSON round trip through orjson is the copy (faster than
    a Python walk over dicts and lists; docs/performance.md);
    a value the log could not encode (a non-string key, an int past 64 bits, an
    object, nesting past orjson's limit) is copied container by container instead,
    with its other objects kept as they are. Never raises.
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    # A flat dict or list of strings, ints, bools and nulls (a typical step output) is
    # what the round trip would give, copied at half its cost.
    if kind is dict:
        for item in value.values():
            if type(item) not in _FLAT:
                break
        else:
            return value.copy()
    elif kind is list:
        for item in value:
            if type(item) not in _FLAT:
                break
        else:
            return value.copy()
    try:
        return orjson.loads(orjson.dumps(value, default=_as_json))
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        return _copy_containers(value)


def private_event(event: Event) -> Event:
    """``event`` with a deep copy of its data (its other fields are immutable), equal
    to it: tuples and other objects stay what they are (the event as it was applied,
    not as the log would give it back)."""
    return trusted_event(event.type, event.version, event.execution_id, event.seq,
                         event.event_id, event.timestamp_ms, event.tenant_id,
                         event.command_id, copy.deepcopy(event.data))


def _empty_like(value: Any) -> dict[Any, Any] | list[Any] | None:
    if isinstance(value, Mapping):
        return {}
    if isinstance(value, list | tuple):
        return []
    return None


def _copy_containers(value: Any) -> Any:
    """Dicts, lists and tuples copied (tuples as lists), without recursion (so no
    nesting depth makes it raise); a container met twice (even in a cycle) is copied
    once."""
    top = _empty_like(value)
    if top is None:
        return value
    copies: dict[int, Any] = {id(value): top}
    pending: list[tuple[Any, Any]] = [(top, value)]
    while pending:
        copy, original = pending.pop()
        items = original.items() if isinstance(copy, dict) else enumerate(original)
        for key, item in items:
            copied = item
            if type(item) not in _IMMUTABLE:
                seen = copies.get(id(item))
                if seen is not None:
                    copied = seen
                else:
                    shell = _empty_like(item)
                    if shell is not None:
                        copies[id(item)] = copied = shell
                        pending.append((shell, item))
            if isinstance(copy, dict):
                copy[key] = copied
            else:
                copy.append(copied)
    return top
