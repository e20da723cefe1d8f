"""Helpers for the projector tests: events on a real log, polling, Postgres counts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from flowmonkey.events.codec import encode_event, headers_for
from flowmonkey.events.envelope import Event
from flowmonkey.log.base import Log, OutRecord
from flowmonkey.projections.base import Projection
from tests.contract.projection_contract import created, finished, started


def run_start(eid: str) -> list[Event]:
    """Seqs 1-3: created, started, first step running."""
    return [created(eid), *started(eid)]


def run_end(eid: str) -> list[Event]:
    """Seqs 4-5: the step completes and so does the execution."""
    return finished(eid)


async def append_events(log: Log, topic: str, events: Sequence[Event]) -> None:
    """Publish ``events`` keyed by execution, as the processors do."""
    await log.append([OutRecord(topic, encode_event(e), key=e.execution_id.encode(),
                                headers=headers_for(e.type, e.version)) for e in events])


async def until(check: Callable[[], bool | Awaitable[bool]], what: str,
                timeout_s: float = 60) -> None:
    """Poll ``check`` (sync or async) until it holds; fail naming ``what`` at the
    deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def fetch(dsn: str, schema: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'set search_path to "{schema}"')
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def count(dsn: str, schema: str, table: str) -> int:
    rows = await fetch(dsn, schema, f"select count(*) as n from {table}")
    value: int = rows[0]["n"]
    return value


async def snapshot(projection: Projection, ids: Sequence[str]) -> dict[str, Any]:
    """What the projection answers for ``ids``: the execution and its history."""
    result: dict[str, Any] = {}
    for eid in ids:
        execution = await projection.get(eid)
        result[eid] = (None if execution is None else execution.model_dump(mode="json"),
                       [e.model_dump(mode="json") for e in await projection.history(eid)])
    return result
