"""The codec: events and commands to bytes and back, refusals with a reason, upcasting (F8)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flowmonkey.errors import DecodeError
from flowmonkey.events import names as n
from flowmonkey.events.codec import (
    command_to_dict,
    decode_command,
    decode_event,
    encode_command,
    encode_event,
    event_to_dict,
    headers_for,
    upcast,
)
from flowmonkey.events.envelope import Command, make_event
from flowmonkey.kernel.apply import apply
from flowmonkey.model.limits import ContextLimits

from .support import T0

EVENT_FIELDS: dict[str, Any] = {"type": "step.started", "execution_id": "e1", "seq": 3,
                                "event_id": "e1:3", "timestamp": T0}
COMMAND_FIELDS: dict[str, Any] = {"type": "execution.cancel", "command_id": "c1",
                                  "execution_id": "e1", "timestamp": T0}


def test_an_event_round_trips() -> None:
    event = make_event(n.STEP_COMPLETED, "e1", 4, T0, {
        "step_id": "s", "output": {"nested": [1, 2.5, None, True, "ü"]}},
        tenant_id="acme", command_id="c9")

    decoded = decode_event(encode_event(event))

    assert decoded == event
    assert event_to_dict(decoded) == event_to_dict(event)


def test_a_seq_zero_event_round_trips() -> None:
    event = make_event(n.COMMAND_REJECTED, "e1", 0, T0, {"code": "X"}, command_id="c")

    assert decode_event(encode_event(event)) == event


def test_an_event_is_encoded_with_the_wire_field_names() -> None:
    event = make_event(n.EXECUTION_STARTED, "e1", 2, T0, {"step_id": "s"})

    assert orjson.loads(encode_event(event)) == {
        "type": "execution.started", "version": 1, "execution_id": "e1", "seq": 2,
        "event_id": "e1:2", "timestamp": T0, "tenant_id": None, "command_id": None,
        "data": {"step_id": "s"}}


def test_pydantic_values_in_event_data_are_encoded_as_json() -> None:
    event = make_event(n.EXECUTION_CREATED, "e1", 1, T0,
                       {"options": {"limits": ContextLimits(max_keys=3)}})

    decoded = decode_event(encode_event(event))

    assert decoded.data["options"]["limits"]["max_keys"] == 3


def test_a_command_round_trips() -> None:
    command = Command(type=n.CMD_START, command_id="c1", execution_id="e1", timestamp_ms=T0,
                      tenant_id="acme", data={"flow_id": "f", "context": {"a": [1]}})

    decoded = decode_command(encode_command(command))

    assert decoded == command
    assert command_to_dict(decoded)["timestamp"] == T0


def test_headers_carry_type_version_and_content_type() -> None:
    assert headers_for("transition", 2) == (
        ("fm-type", b"transition"), ("fm-version", b"2"), ("content-type", b"application/json"))


@pytest.mark.parametrize("decode", [decode_event, decode_command])
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\xff not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
)
def test_garbage_is_refused_with_a_reason(decode: Any, raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(raw)


@pytest.mark.parametrize("missing", sorted(EVENT_FIELDS))
def test_an_event_missing_a_field_is_refused(missing: str) -> None:
    raw = {k: v for k, v in EVENT_FIELDS.items() if k != missing}

    with pytest.raises(DecodeError, match=missing):
        decode_event(orjson.dumps(raw))


@pytest.mark.parametrize(
    "bad", [{"seq": "three"}, {"timestamp": "now"}, {"data": [1]}, {"type": ["x"]},
            {"version": {}}, {"execution_id": 5}])
def test_an_event_with_a_bad_field_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode_event(orjson.dumps({**EVENT_FIELDS, **bad}))


@pytest.mark.parametrize("missing", sorted(COMMAND_FIELDS))
def test_a_command_missing_a_field_is_refused(missing: str) -> None:
    raw = {k: v for k, v in COMMAND_FIELDS.items() if k != missing}

    with pytest.raises(DecodeError, match=f"missing field '{missing}'"):
        decode_command(orjson.dumps(raw))


@pytest.mark.parametrize("bad", [{"timestamp": "now"}, {"data": [1]}, {"command_id": None}])
def test_a_command_with_a_bad_field_is_refused_naming_it(bad: dict[str, Any]) -> None:
    (field,) = bad
    with pytest.raises(DecodeError, match=f"bad fields: {field}"):
        decode_command(orjson.dumps({**COMMAND_FIELDS, **bad}))


def test_version_and_data_default_when_absent() -> None:
    event = decode_event(orjson.dumps(EVENT_FIELDS))
    command = decode_command(orjson.dumps(COMMAND_FIELDS))

    assert (event.version, event.data) == (1, {})
    assert (command.version, command.data) == (1, {})


# --------------------------------------------------------------------------- upcasting


V0_CANCELLED: dict[str, Any] = {
    "type": "execution.cancelled", "version": 0, "execution_id": "e1", "seq": 6,
    "event_id": "e1:6", "timestamp": T0,
    "data": {"source": "user", "reason": "r", "tokensInvalidated": 2, "childrenCancelled": 1},
}


def test_a_v0_cancelled_event_is_upcast_to_v1() -> None:
    event = decode_event(orjson.dumps(V0_CANCELLED))

    assert event.version == 1
    assert event.data == {"source": "user", "reason": "r", "tokens_invalidated": 2,
                          "children_cancelled": 1}


def test_upcasting_leaves_the_input_untouched() -> None:
    raw = orjson.loads(orjson.dumps(V0_CANCELLED))

    upcast(raw)

    assert raw == V0_CANCELLED


def test_an_upcast_event_applies_like_a_current_one() -> None:
    created = apply(None, make_event(n.EXECUTION_CREATED, "e1", 5, T0, {
        "flow_id": "f", "flow_version": "1", "context": {}}))

    state = apply(created, decode_event(orjson.dumps(V0_CANCELLED)))

    assert state is not None
    assert state.cancellation == {"source": "user", "reason": "r", "cancelled_at": T0}


def test_current_versions_and_other_types_are_not_upcast() -> None:
    v1 = {**V0_CANCELLED, "version": 1, "data": {"tokensInvalidated": 2}}
    other = {**V0_CANCELLED, "type": "execution.failed"}

    assert upcast(v1) is v1
    assert upcast(other) is other


def test_an_old_event_the_upcaster_cannot_read_is_refused() -> None:
    with pytest.raises(DecodeError, match="upcast"):
        decode_event(orjson.dumps({**V0_CANCELLED, "data": [1, 2]}))
