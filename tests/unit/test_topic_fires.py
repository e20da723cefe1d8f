"""What a topic trigger makes of consumed records: a ``trigger.fire`` command per JSON
record (keyed by the trigger entity, the source and arrival as the design says, the
same command id for the same record), and a dead letter with the reason for the rest."""

from __future__ import annotations

import orjson
import pytest

from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_command
from flowmonkey.log.base import OutRecord, Record
from flowmonkey.model.trigger import Trigger
from flowmonkey.processors.topic_fires import fire_command_id, fire_records

TRIGGER = Trigger.model_validate({"id": "orders-in", "kind": "topic", "flowId": "order",
                                  "tenantId": "acme", "topic": {"topic": "shop.orders"}})


def _record(value: bytes, offset: int = 7, key: bytes | None = b"A-1") -> Record:
    return Record(topic="shop.orders", partition=2, offset=offset, key=key, value=value,
                  headers=(("origin", b"shop"),), timestamp_ms=1_700_000_000_000)


def _fire(*records: Record, max_value_bytes: int = 1000) -> tuple[list[OutRecord], int, int]:
    fires = fire_records(TRIGGER, records, commands_topic="fm.commands",
                         dead_letter_topic="fm.dead-letter", now_ms=42,
                         max_value_bytes=max_value_bytes)
    return list(fires.records), fires.fired, fires.dead_lettered


def test_a_json_record_becomes_a_fire_command_for_the_trigger_entity() -> None:
    [out], fired, dead = _fire(_record(b'{"id": "A-1", "total": 12.5}'))
    assert (fired, dead) == (1, 0)
    assert out.topic == "fm.commands"
    assert out.key == b"trigger:orders-in"
    command = decode_command(out.value)
    assert command.type == n.CMD_TRIGGER_FIRE
    assert command.execution_id == "trigger:orders-in"
    assert command.tenant_id == "acme"
    assert command.timestamp_ms == 42
    assert command.data == {
        "source": {"kind": "topic", "key": "shop.orders:2:7"},
        "arrival": {"value": {"id": "A-1", "total": 12.5}, "key": "A-1",
                    "topic": "shop.orders", "partition": 2, "offset": 7,
                    "timestampMs": 1_700_000_000_000}}


def test_the_same_record_sends_the_same_command_id_and_another_record_another() -> None:
    first = decode_command(_fire(_record(b"1"))[0][0].value)
    again = decode_command(_fire(_record(b"1"))[0][0].value)
    other = decode_command(_fire(_record(b"1", offset=8))[0][0].value)
    assert first.command_id == again.command_id == fire_command_id("orders-in",
                                                                   "shop.orders:2:7")
    assert other.command_id != first.command_id


def test_any_json_value_fires_and_a_missing_or_binary_key_is_kept_readable() -> None:
    records = [_record(b"[1, 2]", key=None), _record(b'"text"', offset=8, key=b"\xff\x00k")]
    out, fired, _ = _fire(*records)
    assert fired == 2
    arrivals = [decode_command(r.value).data["arrival"] for r in out]
    assert arrivals[0]["value"] == [1, 2]
    assert arrivals[0]["key"] is None
    assert arrivals[1]["value"] == "text"
    assert arrivals[1]["key"] == "\\xff\x00k"


@pytest.mark.parametrize(("value", "reason"), [
    (b"not json", "the value is not JSON"),
    (b"", "the value is empty"),
    (b'{"a": 1', "the value is not JSON"),
    (b"\xff\xfe", "the value is not JSON"),
    (b'{"a": "nul\\u0000"}', "the value cannot be stored: value.a"),
    (b"[" * 200 + b"]" * 200, "the value cannot be stored"),
    (orjson.dumps({"big": "x" * 2000}), "the value is 2010 bytes, over the limit of 1000"),
])
def test_a_record_that_cannot_fire_goes_to_the_dead_letter_topic_with_the_reason(
        value: bytes, reason: str) -> None:
    [out], fired, dead = _fire(_record(value))
    assert (fired, dead) == (0, 1)
    assert out.topic == "fm.dead-letter"
    assert out.value == value
    assert out.key == b"A-1"
    headers = dict(out.headers)
    assert headers["origin"] == b"shop"
    assert headers["fm-source"] == b"shop.orders:2:7"
    error = headers["fm-error"].decode()
    assert error.startswith("topic trigger 'orders-in': ")
    assert reason in error
    assert len(error) < 400


def test_a_batch_keeps_its_order_with_fires_and_dead_letters_mixed() -> None:
    records = [_record(b"1", offset=1), _record(b"nope", offset=2), _record(b"3", offset=3)]
    out, fired, dead = _fire(*records)
    assert (fired, dead) == (2, 1)
    assert [r.topic for r in out] == ["fm.commands", "fm.dead-letter", "fm.commands"]


def test_only_a_topic_trigger_has_a_consumer_group() -> None:
    from flowmonkey.processors.topic_triggers import group_of

    assert group_of(TRIGGER, "fm") == "fm-trigger-orders-in"
    named = TRIGGER.model_copy(update={"topic": TRIGGER.topic.model_copy(  # type: ignore[union-attr]
        update={"group": "mine"})})
    assert group_of(named, "fm") == "mine"
    webhook = Trigger.model_validate({"id": "w", "kind": "webhook", "flowId": "f",
                                      "webhook": {"secret": "s"}})
    with pytest.raises(ValueError, match="'w' is a webhook trigger, not a topic trigger"):
        group_of(webhook, "fm")
