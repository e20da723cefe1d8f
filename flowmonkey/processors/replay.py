"""Recovery's replay: a partition's events, read from an offset (the start, or its
snapshot's), applied into its state through the same appliers deciding uses."""

from __future__ import annotations

import logging

from flowmonkey.errors import DecodeError
from flowmonkey.events.codec import decode_event
from flowmonkey.kernel.apply import apply_to_partition
from flowmonkey.kernel.state import PartitionState
from flowmonkey.log.base import Log

log = logging.getLogger("flowmonkey.processor")

_READ_BATCH = 5000


async def replay_events(log_: Log, topic: str, partition: int, state: PartitionState,
                        offset: int) -> tuple[int, int]:
    """Apply the events of ``topic``'s ``partition`` from ``offset`` on to ``state``.

    Returns the offset after the last event and how many records were read. An
    undecodable event is logged and skipped; placeholders for records lost to damage
    are skipped and reported together, once."""
    replayed = 0
    lost: list[int] = []  # offsets of placeholders for records lost to damage
    while True:
        records = await log_.read(topic, partition, offset, _READ_BATCH)
        if not records:
            break
        replayed += len(records)
        for record in records:
            if not record.value and record.lost:  # (lost reads headers: only if empty)
                lost.append(record.offset)
                continue
            try:
                event = decode_event(record.value)
            except DecodeError as exc:
                log.error("skipping undecodable event at %s:%d:%d: %s", record.topic,
                          record.partition, record.offset, exc)
                continue
            apply_to_partition(state, event)
        offset = records[-1].offset + 1
    if lost:
        log.warning("%s:%d: skipped %d placeholder record(s) for events lost to damage "
                    "(offsets %d..%d; see `flowmonkey log repair`): the executions "
                    "they belonged to lack those events", topic,
                    partition, len(lost), lost[0], lost[-1])
    return offset, replayed
