"""In-process events skip decoding: the embedded log hands the appended object back once,
and only for events whose encoding decodes to an equal event (``codec.round_trips``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from flowmonkey.events import names as n
from flowmonkey.events.codec import (
    compact_event,
    decode_command,
    decode_event,
    decode_record,
    encode_command,
    encode_event,
    event_record,
    headers_for,
    round_trips,
)
from flowmonkey.events.envelope import Command, Event, make_event
from flowmonkey.log import EmbeddedLog, OutRecord, Record, TopicSpec
from flowmonkey.log.decoded import DecodedRecord
from flowmonkey.projections.memory import MemoryProjection

T0 = 1_700_000_000_000


def completed(output: Any) -> Event:
    return make_event(n.STEP_COMPLETED, "e1", 2, T0,
                      {"step_id": "s", "outcome": "success", "output": output},
                      command_id="result:e1:1")


@pytest.mark.parametrize("output", [None, 1, 1.5, "x", True, [1, {"a": [None]}], {"k": {}}])
def test_json_native_events_round_trip(output: Any) -> None:
    event = completed(output)
    assert round_trips(event)
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize("output", [
    (1, 2), datetime(2024, 1, 1, tzinfo=UTC), math.nan, math.inf,
    {"nested": [(1,)]}, type("Text", (str,), {})("a str subclass"),
])
def test_events_whose_encoding_decodes_differently_do_not_round_trip(output: Any) -> None:
    event = completed(output)
    assert not round_trips(event)
    record = event_record("events", event, 0)
    assert getattr(record, "decoded", None) is None


def test_an_event_with_non_string_keys_does_not_round_trip() -> None:
    assert not round_trips(completed({1: "int key"}))


async def test_the_embedded_log_hands_the_appended_event_back_once() -> None:
    event = completed({"n": 1})
    async with EmbeddedLog() as log:
        await log.create_topics([TopicSpec("events", 1)])
        await log.append([event_record("events", event, 0)])

        first = await log.read("events", 0, 0)
        second = await log.read("events", 0, 0)

    assert isinstance(first[0], DecodedRecord)
    assert decode_record(first[0]) is event
    assert first == second  # compares as the plain record it stands for
    assert type(second[0]) is Record  # the object was handed out and forgotten
    assert decode_record(second[0]) == event
    assert first[0].value == encode_event(event)
    assert first[0].headers == headers_for(event.type, event.version)


async def test_a_plain_record_is_decoded_from_its_bytes() -> None:
    event = completed([1, 2])
    async with EmbeddedLog() as log:
        await log.create_topics([TopicSpec("events", 1)])
        await log.append([OutRecord("events", encode_event(event), partition=0)])
        (record,) = await log.read("events", 0, 0)

    assert type(record) is Record
    assert decode_record(record) == event


def test_compact_event_reuses_the_bytes_of_a_record_it_decoded() -> None:
    event = completed({"n": 1})
    record = DecodedRecord("events", 0, 0, None, b"the record's own bytes", (), T0, event)

    assert decode_record(record) is event
    assert compact_event(event) == b"the record's own bytes"
    assert compact_event(event) == encode_event(event)  # taken once, then encoded again


def test_compact_event_keeps_an_event_that_would_not_round_trip() -> None:
    event = completed((1, 2))
    assert compact_event(event) is event


async def test_the_memory_projection_history_equals_the_events_applied() -> None:
    created = make_event(n.EXECUTION_CREATED, "e1", 1, T0,
                         {"flow_id": "f", "flow_version": "1", "context": {}, "options": {}})
    native, odd = completed({"n": 1}), make_event(n.STEP_COMPLETED, "e1", 3, T0,
                                                  {"step_id": "s", "outcome": "success",
                                                   "output": (1, 2)})
    projection = MemoryProjection()
    await projection.apply_events([created, native, odd])

    history = await projection.history("e1")

    assert history == [created, native, odd]
    # kept as given (its encoding would turn the tuple into a list), yet the caller's own
    assert history[2].data["output"] == (1, 2)
    assert history[2] is not odd


def test_a_well_typed_command_decodes_as_validation_would() -> None:
    command = Command(type=n.CMD_CANCEL, command_id="c1", execution_id="e1", timestamp_ms=T0,
                      tenant_id="acme", data={"reason": "x"})

    decoded = decode_command(encode_command(command))

    assert decoded == command
    assert decoded.model_copy(update={"timestamp_ms": T0 + 1}).timestamp_ms == T0 + 1


@pytest.mark.parametrize("odd", [{"version": 2.0}, {"timestamp": 5.0}, {"data": []}])
def test_other_commands_still_go_through_validation(odd: dict[str, Any]) -> None:
    raw = {"type": n.CMD_CANCEL, "command_id": "c1", "execution_id": "e1",
           "timestamp": T0, "data": {}, **odd}

    decoded = decode_command(orjson.dumps(raw))

    assert decoded == Command(type=raw["type"], version=raw.get("version", 1),
                              command_id="c1", execution_id="e1",
                              timestamp_ms=raw["timestamp"], data=raw["data"] or {})


async def test_a_durable_log_hands_the_event_back_and_stores_its_bytes(tmp_path: Any) -> None:
    events = [completed({"n": i}) for i in range(3)]
    async with EmbeddedLog(tmp_path, segment_bytes=200) as log:  # rolls segments too
        await log.create_topics([TopicSpec("events", 1)])
        await log.append([event_record("events", e, 0) for e in events])
        live = await log.read("events", 0, 0)

    async with EmbeddedLog(tmp_path) as reopened:
        stored = await reopened.read("events", 0, 0)

    assert [decode_record(r) for r in live] == events
    assert all(decode_record(r) is e for r, e in zip(live, events, strict=True))
    assert stored == live
    assert [decode_record(r) for r in stored] == events
