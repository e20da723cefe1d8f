"""What a topic trigger makes of the records it consumes: one ``trigger.fire`` command
per record, or a dead letter with the reason when the record cannot start a flow.

Pure: no I/O. :mod:`flowmonkey.processors.topic_triggers` appends what this returns,
together with the consumed offsets, in one transaction.

A record fires its trigger when its value is JSON (UTF-8) of at most
``max_value_bytes`` that the log can store (no NUL in a string, integers in the 64-bit
range, nesting within :data:`~flowmonkey.model.limits.MAX_NESTING_LIMIT`). The command
is keyed by the trigger entity (``trigger:<id>``), so its partition's processor
decides it, and its command id is derived from the record's position: a record read
again (after a crash, before its offsets were committed) sends the same command, which
the processor's command-id deduplication absorbs, and the execution id the kernel
derives from ``source.key`` is the same either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from flowmonkey.events import names as n
from flowmonkey.events.codec import encode_command, headers_for
from flowmonkey.events.envelope import Command
from flowmonkey.log.base import OutRecord, Record
from flowmonkey.model.limits import MAX_NESTING_LIMIT
from flowmonkey.model.storable import UnstorableValue, check_body
from flowmonkey.model.trigger import Trigger
from flowmonkey.processors.records import dead_letter_record

DEFAULT_MAX_VALUE_BYTES = 512 * 1024
"""A record value past this goes to the dead-letter topic: the ``trigger.fire``
command that carries it, and the start command that carries the context made of it,
must each fit in one log record (about 1 MiB on Kafka's defaults)."""
MAX_VALUE_BYTES = 900 * 1024
_REASON_CHARS = 300


@dataclass(slots=True)
class Fires:
    """The records to append for a batch, and what they are."""

    records: list[OutRecord] = field(default_factory=list)
    fired: int = 0
    dead_lettered: int = 0


def source_key(record: Record) -> str:
    """The arrival's dedup key: ``<topic>:<partition>:<offset>``."""
    return f"{record.topic}:{record.partition}:{record.offset}"


def fire_command_id(trigger_id: str, key: str) -> str:
    """The same record always sends the same command id."""
    digest = hashlib.blake2b(f"{trigger_id}\0topic\0{key}".encode(), digest_size=16)
    return "tfire-" + digest.hexdigest()


def arrival_of(record: Record, value: Any) -> dict[str, Any]:
    """The topic arrival document (see :mod:`flowmonkey.model.trigger`). A key that is
    not UTF-8 is given with its undecodable bytes escaped (``\\xNN``)."""
    key = None if record.key is None else record.key.decode("utf-8", "backslashreplace")
    return {"value": value, "key": key, "topic": record.topic,
            "partition": record.partition, "offset": record.offset,
            "timestampMs": record.timestamp_ms}


def fire_records(trigger: Trigger, records: Sequence[Record], *, commands_topic: str,
                 dead_letter_topic: str, now_ms: int,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> Fires:
    """A ``trigger.fire`` command for each record that can fire ``trigger``, a dead
    letter (the record as it came, the reason in its ``fm-error`` header) for each
    that cannot; in the records' order."""
    out = Fires()
    entity = trigger.entity_id
    headers = headers_for(n.CMD_TRIGGER_FIRE, 1)
    for record in records:
        value, problem = _decoded(record, max_value_bytes)
        encoded: bytes | None = None
        if problem is None:
            key = source_key(record)
            command = Command(
                type=n.CMD_TRIGGER_FIRE, command_id=fire_command_id(trigger.id, key),
                execution_id=entity, timestamp_ms=now_ms, tenant_id=trigger.tenant_id,
                data={"source": {"kind": "topic", "key": key},
                      "arrival": arrival_of(record, value)})
            try:
                encoded = encode_command(command)
            except (TypeError, ValueError) as exc:  # what check_body did not foresee
                problem = f"the command carrying it cannot be encoded: {exc}"
        if encoded is None:
            reason = f"topic trigger {trigger.id!r}: {problem}"
            out.records.append(dead_letter_record(dead_letter_topic, record, reason))
            out.dead_lettered += 1
        else:
            out.records.append(OutRecord(commands_topic, encoded, key=entity.encode(),
                                         headers=headers))
            out.fired += 1
    return out


def _decoded(record: Record, max_value_bytes: int) -> tuple[Any, str | None]:
    """The record's JSON value, or why it has none that can fire a trigger."""
    size = len(record.value)
    if size > max_value_bytes:
        return None, f"the value is {size} bytes, over the limit of {max_value_bytes}"
    try:
        value = orjson.loads(record.value)
    except orjson.JSONDecodeError as exc:
        what = "empty (a tombstone?)" if size == 0 else f"not JSON: {exc}"
        return None, f"the value is {what}"[:_REASON_CHARS]
    try:
        check_body({"value": value}, max_depth=MAX_NESTING_LIMIT)
    except UnstorableValue as exc:
        return None, f"the value cannot be stored: {exc}"[:_REASON_CHARS]
    return value, None
