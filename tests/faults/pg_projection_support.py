"""Helpers for the PostgreSQL projection fault tests: events published to chosen
partitions, what the log and the projection hold, and the replay verification."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from flowmonkey.events.codec import decode_record, encode_event, headers_for
from flowmonkey.events.envelope import Event
from flowmonkey.log.base import Log, OutRecord
from flowmonkey.projections.audit import ProjectionRows, VerifyReport, verify_all

EventId = tuple[str, int, str]
"""(execution id, seq, event id): an event's identity in fm_events."""


async def publish(log: Log, topic: str, runs: Sequence[Sequence[Event]],
                  partitions: int) -> None:
    """Append each run's events to partition ``index % partitions`` (every partition
    gets some as soon as there are as many runs as partitions)."""
    await log.append([OutRecord(topic, encode_event(e), key=e.execution_id.encode(),
                                headers=headers_for(e.type, e.version),
                                partition=i % partitions)
                      for i, run in enumerate(runs) for e in run])


async def log_events(log: Log, topic: str, partitions: int) -> set[EventId]:
    """Every event on ``topic``."""
    found: set[EventId] = set()
    for partition in range(partitions):
        offset = 0
        while records := await log.read(topic, partition, offset, 5000):
            for record in records:
                event = decode_record(record)
                found.add((event.execution_id, event.seq, event.event_id))
            offset = records[-1].offset + 1
    return found


async def after_last_records(log: Log, topic: str, partitions: int) -> dict[int, int]:
    """Per partition with records: the offset after its last record (what a projector
    stores once it applied everything; Kafka's end offset can be past it by
    transaction markers)."""
    ends: dict[int, int] = {}
    for partition in range(partitions):
        offset = 0
        while records := await log.read(topic, partition, offset, 5000):
            offset = ends[partition] = records[-1].offset + 1
    return ends


async def projected_events(dsn: str, schema: str) -> set[EventId]:
    """Every event in the projection's fm_events."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'select execution_id, seq, event_id from "{schema}".fm_events')
    finally:
        await conn.close()
    return {(r["execution_id"], r["seq"], r["event_id"]) for r in rows}


async def stored_offsets(dsn: str, schema: str) -> dict[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'select partition, next_offset from "{schema}".fm_projection_offsets')
    finally:
        await conn.close()
    return {r["partition"]: r["next_offset"] for r in rows}


async def verify(dsn: str, schema: str, log: Log, topic: str) -> VerifyReport:
    """``flowmonkey replay --verify-all``: every execution of the log against the
    projection."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = ProjectionRows(conn, schema)
        await rows.check()
        return await verify_all(rows, log, topic)
    finally:
        await conn.close()
