"""The log records a partition's processor writes besides its events: the follow-up
commands a decision sends, and dead letters (a command record refused, or an internal
command the engine could not even reject, which has no record of its own)."""

from __future__ import annotations

import orjson

from flowmonkey.events.codec import encode_command, headers_for
from flowmonkey.events.envelope import Command
from flowmonkey.kernel.error_details import bounded_message
from flowmonkey.log.base import OutRecord, Record


def command_record(topic: str, command: Command) -> OutRecord:
    """A follow-up command, keyed by its execution id (so its partition's)."""
    return OutRecord(topic, encode_command(command), key=command.execution_id.encode(),
                     headers=headers_for(command.type, command.version))


def dead_letter_record(topic: str, record: Record, reason: str) -> OutRecord:
    """``record`` as it came, with the reason and where it came from in its headers."""
    return OutRecord(
        topic, record.value, key=record.key,
        headers=(*record.headers, ("fm-error", reason.encode()),
                 ("fm-source", f"{record.topic}:{record.partition}:{record.offset}".encode())))


def internal_dead_letter_record(topic: str, command: Command, reason: str) -> OutRecord:
    """An internal command has no record: what identifies it, as text JSON can carry."""
    value = orjson.dumps({"command_id": bounded_message(command.command_id),
                          "type": bounded_message(command.type),
                          "execution_id": bounded_message(command.execution_id),
                          "reason": reason})
    return OutRecord(topic, value,
                     key=bounded_message(command.execution_id).encode(),
                     headers=(("fm-error", reason.encode("utf-8", "replace")),
                              ("fm-source", b"internal")))
