"""The checks a command record from the log passes before its partition's processor
decides it: a record that fails one goes to the dead-letter topic with the reason
(``PartitionProcessor._command_from``), and is never decided."""

from __future__ import annotations

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.kernel.command_checks import MAX_ID_CHARS
from flowmonkey.log.partitioner import partition_for


def command_refusal(command: Command, partition: int, partitions: int) -> str | None:
    """Why ``command``, read from ``partition`` of the commands topic, is refused, or
    None."""
    for what, identifier in (("command id", command.command_id),
                             ("execution id", command.execution_id)):
        if len(identifier) > MAX_ID_CHARS:
            # every event about it would carry the id: refused before any is written
            return f"the {what} is {len(identifier)} characters long, over {MAX_ID_CHARS}"
    if command.type not in n.EXTERNAL_COMMANDS:
        # Handler results and timer firings only come from inside the processor; a
        # record claiming to be one is refused, or anyone could forge a step's outcome.
        return (f"command type {command.type!r} cannot be published; "
                f"use one of {', '.join(sorted(n.EXTERNAL_COMMANDS))}")
    if command.type == n.CMD_START and \
            partition_for(command.execution_id.encode(), partitions) != partition:
        return (
            f"start command for {command.execution_id!r} arrived on partition "
            f"{partition}, but that id belongs to partition "
            f"{partition_for(command.execution_id.encode(), partitions)}; key the "
            "record by execution id (or pick an id in the idempotency scope's partition)")
    return None
