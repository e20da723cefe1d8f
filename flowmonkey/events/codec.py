"""Bytes on the log <-> events and commands (orjson), with type and version headers.

Encoding is trusted (we built the objects); decoding is the edge where records from
any producer arrive, so it validates and raises :class:`DecodeError` with the reason.
Old event versions are upcast to the current one here, in one place.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from pydantic import ValidationError

from flowmonkey.errors import DecodeError
from flowmonkey.events.envelope import (
    _EVENT_FIELDS,
    Command,
    Event,
    _set_dict,
    _set_extra,
    _set_fields_set,
    _set_private,
    trusted_command,
)
from flowmonkey.events.envelope import _new as _new_event
from flowmonkey.events.upcasting import UPCASTERS
from flowmonkey.log.base import Headers, OutRecord, Record
from flowmonkey.log.decoded import new_decoded_out_record

CONTENT_TYPE = b"application/json"


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot encode {type(value).__name__}")


def event_to_dict(event: Event) -> dict[str, Any]:
    return {
        "type": event.type,
        "version": event.version,
        "execution_id": event.execution_id,
        "seq": event.seq,
        "event_id": event.event_id,
        "timestamp": event.timestamp_ms,
        "tenant_id": event.tenant_id,
        "command_id": event.command_id,
        "data": event.data,
    }


def _exact(value: bytes) -> bytes:
    """A right-sized copy of orjson's output.

    orjson returns bytes whose allocation keeps its whole (4 KiB or larger) output
    buffer; the log keeps every record, so without the copy each ~300-byte event would
    pin 4 KiB (over 1 GiB for 50,000 steps).
    """
    return memoryview(value).tobytes()


def encode_event(event: Event) -> bytes:
    return _exact(orjson.dumps(event_to_dict(event), default=_default))


_HEADERS: dict[tuple[str, int], Headers] = {}


def headers_for(type: str, version: int) -> Headers:
    # One shared tuple per type and version: the log keeps a record's headers as long
    # as the record, and there are only a few dozen distinct ones.
    headers = _HEADERS.get((type, version))
    if headers is None:
        headers = (("fm-type", type.encode()), ("fm-version", str(version).encode()),
                   ("content-type", CONTENT_TYPE))
        if len(_HEADERS) < 1024:
            _HEADERS[(type, version)] = headers
    return headers


_SCALARS = frozenset({str, int, bool, type(None)})


def _json_native(value: Any) -> bool:
    """True if decoding ``value``'s JSON gives back an equal value of the same types:
    only dict (str keys), list, str, int, bool, None and finite floats, exactly (no
    subclasses, tuples, datetimes or models: orjson writes those as something else)."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SCALARS and not _json_native(item)):
                return False
        return True
    if kind in _SCALARS:
        return True
    if kind is list:
        return all(type(item) in _SCALARS or _json_native(item) for item in value)
    return kind is float and math.isfinite(value)


def round_trips(event: Event) -> bool:
    """True if ``decode_event(encode_event(event))`` equals ``event``, field types and
    all, so a reader in this process may take ``event`` instead of decoding."""
    return (type(event.type) is str and type(event.execution_id) is str
            and type(event.event_id) is str and type(event.seq) is int
            and type(event.timestamp_ms) is int and type(event.version) is int
            and type(event.tenant_id) in _OPTIONAL_STR
            and type(event.command_id) in _OPTIONAL_STR
            and (event.type, event.version) not in UPCASTERS
            and _json_native(event.data))


_OPTIONAL_STR = frozenset({str, type(None)})
_COMMAND_FIELDS = tuple(Command.model_fields)


def event_record(topic: str, event: Event, partition: int | None = None, *,
                 attach: bool = True) -> OutRecord:
    """The log record for ``event``, keyed by its execution id; it carries ``event``
    itself for readers in this process when decoding would give an equal event.
    ``attach=False`` skips that (and its check) for a log that would drop it anyway."""
    return new_decoded_out_record(topic, encode_event(event), event.execution_id.encode(),
                                  headers_for(event.type, event.version), partition,
                                  event if attach and round_trips(event) else None)


def decode_record(record: Record) -> Event:
    """The event in an events-topic record: the object it was appended with when the
    log kept it (see :mod:`flowmonkey.log.decoded`), else decoded from its bytes."""
    decoded = getattr(record, "decoded", None)
    if isinstance(decoded, Event):
        # Its bytes, for a reader that wants to keep the event compactly (the memory
        # projection): re-encoding it would cost more than the rest of projecting it.
        # The entry holds the event, so its id cannot be reused while it is there.
        if len(_ENCODINGS) >= _MAX_ENCODINGS:
            _ENCODINGS.clear()  # nobody takes them: encoding again is the fallback
        _ENCODINGS[id(decoded)] = (decoded, record.value)
        return decoded
    return decode_event(record.value)


_ENCODINGS: dict[int, tuple[Event, bytes]] = {}
_MAX_ENCODINGS = 8_192  # above one projector batch (2,000), far below a leak


def compact_event(event: Event) -> bytes | Event:
    """``event`` as its encoding when decoding that gives an equal event, else itself.

    For an event that :func:`decode_record` just handed out, the record's own bytes.
    """
    found = _ENCODINGS.pop(id(event), None)
    if found is not None and found[0] is event:
        return found[1]
    return encode_event(event) if round_trips(event) else event


def decode_event(value: bytes) -> Event:
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"event is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DecodeError("event must be a JSON object")
    if UPCASTERS:
        try:
            # only the few (type, version) pairs with an upcaster take the loop
            if (raw.get("type"), raw.get("version", 1)) in UPCASTERS:
                raw = upcast(raw)
        except (TypeError, ValueError, AttributeError) as exc:
            # An unhashable type or version, or an old event its upcaster cannot read.
            raise DecodeError(f"event cannot be upcast: {exc}") from None
    # Checked by hand rather than by pydantic validation: this runs for every event
    # the projector and the processors read, and these checks are all it needs.
    try:
        type_, execution_id, seq = raw["type"], raw["execution_id"], raw["seq"]
        event_id, timestamp = raw["event_id"], raw["timestamp"]
    except KeyError as exc:
        raise DecodeError(f"event is missing field {exc.args[0]!r}") from None
    version = raw.get("version", 1)
    tenant_id, command_id = raw.get("tenant_id"), raw.get("command_id")
    data = raw.get("data")
    if data is None:
        data = {}
    if not (isinstance(type_, str) and isinstance(execution_id, str)
            and isinstance(event_id, str) and type(seq) is int and type(timestamp) is int
            and type(version) is int and isinstance(data, dict)
            and (tenant_id is None or isinstance(tenant_id, str))
            and (command_id is None or isinstance(command_id, str))):
        raise DecodeError(f"event has a field of the wrong type: {_shape(raw)}")
    # trusted_event, inlined: this runs for every event a replay reads
    event: Event = _new_event(Event)
    _set_dict(event, {"type": type_, "version": version, "execution_id": execution_id,
                      "seq": seq, "event_id": event_id, "timestamp_ms": timestamp,
                      "tenant_id": tenant_id, "command_id": command_id, "data": data})
    _set_fields_set(event, _EVENT_FIELDS)
    _set_extra(event, None)
    _set_private(event, None)
    return event


def _shape(raw: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {type(v).__name__}" for k, v in raw.items() if k != "data")


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring an old event version up to the current one (``events/upcasting.py``)."""
    while True:
        step = UPCASTERS.get((raw.get("type"), raw.get("version", 1)))
        if step is None:
            return raw
        raw = step(raw)


def command_to_dict(command: Command) -> dict[str, Any]:
    return {
        "type": command.type,
        "version": command.version,
        "command_id": command.command_id,
        "execution_id": command.execution_id,
        "timestamp": command.timestamp_ms,
        "tenant_id": command.tenant_id,
        "data": command.data,
    }


def encode_command(command: Command) -> bytes:
    return _exact(orjson.dumps(command_to_dict(command), default=_default))


def decode_command(value: bytes) -> Command:
    """A command from any producer; anything malformed raises DecodeError with the reason."""
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"command is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DecodeError("command must be a JSON object")
    try:
        type_, version, command_id = raw["type"], raw.get("version", 1), raw["command_id"]
        execution_id, timestamp = raw["execution_id"], raw["timestamp"]
        tenant_id, data = raw.get("tenant_id"), raw.get("data") or {}
        if (type(type_) is str and type(version) is int and type(command_id) is str
                and type(execution_id) is str and type(timestamp) is int
                and type(tenant_id) in _OPTIONAL_STR and type(data) is dict):
            # Exactly the types validation would produce it from (JSON keys are str):
            # skip pydantic, whose validation costs as much as the rest of deciding the
            # command.
            command = trusted_command(type_, command_id, execution_id, timestamp, data,
                                      tenant_id, version)
            # a set of its own, as validation gives, so model_copy(update=...) works
            object.__setattr__(command, "__pydantic_fields_set__", set(_COMMAND_FIELDS))
            return command
        return Command(
            type=type_, version=version, command_id=command_id, execution_id=execution_id,
            timestamp_ms=timestamp, tenant_id=tenant_id, data=data,
        )
    except KeyError as exc:
        raise DecodeError(f"command is missing field {exc.args[0]!r}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DecodeError(f"command has bad fields: {problems}") from None
