"""The PostgreSQL projection's apply rate with ``synchronous_commit`` off and on.

Applies ``--events`` events (executions of 5 events: created, started, step started,
step completed, completed) to a fresh schema in batches of ``--batch-size``, as the
projector does (one transaction per batch, offsets compare-and-set with the rows),
once per setting, ``--repeat`` times alternating, and prints the median events/s of
each. Only the projection's own work is timed: no log, no decoding.

The PostgreSQL server is one of its own with durable settings (``fsync = on``,
``full_page_writes = on``), started with the machine's initdb/pg_ctl like the test
services, so the numbers include real WAL flushes on this machine's disk; or pass
``--dsn`` to measure an existing server.

    python bench/projection_commit.py --events 60000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import asyncpg

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event, make_event
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.testing.services_postgres import PostgresServer

T0 = 1_700_000_000_000
TOPIC = "bench.events"
GROUP = "bench"


def run_events(eid: str) -> list[Event]:
    def ev(kind: str, seq: int, data: dict[str, Any]) -> Event:
        return make_event(kind, eid, seq, T0 + seq, data)

    return [
        ev(n.EXECUTION_CREATED, 1, {"flow_id": "orders", "flow_version": "1",
                                    "context": {"order": {"id": eid, "qty": 2}},
                                    "options": {}, "parent_execution_id": None,
                                    "parent_step_id": None}),
        ev(n.EXECUTION_STARTED, 2, {"step_id": "charge"}),
        ev(n.STEP_STARTED, 3, {"step_id": "charge", "attempt": 1, "attempt_id": f"{eid}:3"}),
        ev(n.STEP_COMPLETED, 4, {"step_id": "charge", "outcome": "success",
                                 "output_key": "charge", "output": {"ok": True}}),
        ev(n.EXECUTION_COMPLETED, 5, {"step_id": "charge", "total_steps": 1}),
    ]


async def apply_all(dsn: str, events: list[Event], batch_size: int,
                    synchronous_commit: str) -> float:
    """Events per second applying ``events`` into a fresh schema."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    projection = PostgresProjection(dsn, schema, pool_max=2,
                                     synchronous_commit=synchronous_commit)
    await projection.start()
    try:
        began = time.perf_counter()
        offset = 0
        for start in range(0, len(events), batch_size):
            batch = events[start:start + batch_size]
            await projection.apply_events_with_offsets(
                batch, GROUP, {(TOPIC, 0): offset + len(batch)}, since={(TOPIC, 0): offset})
            offset += len(batch)
        return len(events) / (time.perf_counter() - began)
    finally:
        await projection.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'drop schema "{schema}" cascade')
        finally:
            await conn.close()


async def measure(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    events = [e for i in range(args.events // 5) for e in run_events(f"x{i:07d}")]
    rates: dict[str, list[float]] = {"off": [], "on": []}
    await apply_all(dsn, events[:5000], args.batch_size, "off")  # warm up
    for _ in range(args.repeat):
        for setting in rates:
            rates[setting].append(await apply_all(dsn, events, args.batch_size, setting))
    return {"events": len(events), "batch_size": args.batch_size,
            **{f"events_per_s_{k}": round(statistics.median(v)) for k, v in rates.items()},
            "runs": {k: [round(r) for r in v] for k, v in rates.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", help="an existing server (default: start a durable one)")
    args = parser.parse_args()
    if args.dsn:
        result = asyncio.run(measure(args.dsn, args))
    else:
        with PostgresServer(settings={"fsync": "on", "full_page_writes": "on",
                                      "synchronous_commit": "on"}) as server:
            result = asyncio.run(measure(server.dsn, args))
        result["server"] = "own, fsync on"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
