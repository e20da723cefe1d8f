"""An event's ``data`` as the HTTP API returns it: the API's key style and timestamps.

The kernel writes event data in snake_case with epoch-millisecond points in time (the
log's format, :mod:`flowmonkey.events.types`). The API answers in camelCase with
ISO-8601 UTC strings, so an event reads like everything else it returns. Only the
engine's own field names are converted, per the event type's schema: the values that
are the user's (``context``, ``input``, ``output``, resume ``data``, ``metadata``,
``row``, ``writes``, error ``details`` …) are returned exactly as given, their keys
untouched. A field the schema does not know is returned as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic.alias_generators import to_camel

from flowmonkey.api.times import iso_utc_ms
from flowmonkey.events.envelope import Event
from flowmonkey.events.types import EVENT_SCHEMAS


def _time(value: Any) -> Any:
    return iso_utc_ms(value) if isinstance(value, int) and not isinstance(value, bool) \
        else value


def _error(value: Any) -> Any:
    """An error object: ``code``, ``message``, ``stepId``, ``timestamp`` (ISO); its
    ``details`` are the handler's and keep their keys."""
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "timestamp":
            out[key] = _time(item)
        elif key == "step_id":
            out["stepId"] = item
        else:
            out[key] = item
    return out


def _engine_keys(value: Any) -> Any:
    """An object of the engine's settings (timeouts, limits): every key camelCase."""
    if not isinstance(value, dict):
        return value
    return {to_camel(k): v for k, v in value.items()}


def _options(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {to_camel(k): _engine_keys(v) if k == "limits" else v for k, v in value.items()}


def _as_is(value: Any) -> Any:
    return value


_VALUES: dict[str, Callable[[Any], Any]] = {
    "error": _error, "options": _options, "timeout": _engine_keys,
}


def _value(name: str) -> Callable[[Any], Any]:
    # a field named ``…_at`` is a point in time, epoch milliseconds in the log
    return _VALUES.get(name) or (_time if name.endswith("_at") else _as_is)


# per (type, version): field name -> (API key, value conversion)
_FIELDS: dict[tuple[str, int], dict[str, tuple[str, Callable[[Any], Any]]]] = {
    key: {name: (to_camel(name), _value(name)) for name in model.model_fields}
    for key, model in EVENT_SCHEMAS.items()
}


def api_event_data(event: Event) -> dict[str, Any]:
    """``event.data`` with the schema's field names in camelCase and its points in time
    as ISO-8601 UTC strings; user values untouched."""
    fields = _FIELDS.get((event.type, event.version))
    if fields is None:
        return dict(event.data)
    out: dict[str, Any] = {}
    for name, value in event.data.items():
        field = fields.get(name)
        if field is None:
            out[name] = value
        else:
            out[field[0]] = field[1](value)
    return out
