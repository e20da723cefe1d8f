"""Recovery time of one partition, with and without a snapshot (DESIGN §4 "Recovery").

Fills one events partition with ``--events`` events (executions of a 5-step flow, run
by an Engine whose processor saves snapshots every ``--snapshot-every`` events), then
times a fresh processor's ``recover()`` over it three ways: a full replay from offset
0, and from the newest snapshot plus the tail after it. Kafka + PostgreSQL by default
(``--embedded``: the in-memory embedded log and the memory snapshot store, which
isolates the CPU cost). Wall and CPU time are the median of ``--repeat`` runs.

Services: as ``bench/kafka_throughput.py`` (``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP`` /
``FLOWMONKEY_TEST_POSTGRES_DSN``, or the test services start local ones).

    python bench/snapshot_recovery.py --events 20000
    python bench/snapshot_recovery.py --events 100000 --embedded
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

from flowmonkey import Engine, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import KafkaLog
from flowmonkey.log.base import Log
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.result import StepResult
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.runner import StepRunner
from flowmonkey.processors.snapshots import SnapshotStore
from flowmonkey.processors.snapshots_memory import MemorySnapshotStore
from flowmonkey.processors.snapshots_postgres import PostgresSnapshotStore
from flowmonkey.testing.services import services_from_env

STEPS = 5


@handler("bench-noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"n": 1, "step": params.step.id})


FLOW = {
    "id": "bench", "version": "1", "initialStepId": "s0",
    "steps": {f"s{i}": {"id": f"s{i}", "type": "bench-noop", "outputKey": f"s{i}",
                        "transitions": {"onSuccess": f"s{i + 1}" if i + 1 < STEPS else None}}
              for i in range(STEPS)},
}


async def fill(engine: Engine, events: int, concurrency: int) -> int:
    """Run executions until the partition holds ``events`` events; returns how many."""
    topic = engine.topics.events
    count = 0
    while await engine.log.end_offset(topic, 0) < events:
        batch = await asyncio.gather(*(engine.create("bench", {"i": count + i})
                                       for i in range(concurrency)))
        await asyncio.gather(*(engine.wait(c.execution.id, timeout_s=120) for c in batch))
        count += concurrency
    [processor] = engine.processors
    if processor.snapshotter is not None:
        await processor.snapshotter.wait_saved()
    return count


async def recover_once(log: Log, engine: Engine, store: SnapshotStore | None) -> dict[str, Any]:
    clock = SimulatedClock()
    processor = PartitionProcessor(0, 1, log, engine.topics, engine.env, engine.handlers,
                                   StepRunner(30_000, clock.now_ms), clock, "bench-recovery",
                                   snapshots=store)
    wall, cpu = time.perf_counter(), time.process_time()
    await processor.recover()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await processor.stop()
    snapshotter = processor.snapshotter
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000,
            "executions": len(processor.state.executions),
            "records_replayed": processor.events_replayed,
            "snapshot_offset": snapshotter.snapshot_offset if snapshotter else None}


async def measure(make_log: Any, engine: Engine, store: SnapshotStore | None,
                  repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        log = make_log()
        await log.start()
        try:
            runs.append(await recover_once(log, engine, store))
        finally:
            if log is not engine.log:
                await log.close()
    result = dict(runs[-1])
    result["wall_ms"] = round(statistics.median(r["wall_ms"] for r in runs), 1)
    result["cpu_ms"] = round(statistics.median(r["cpu_ms"] for r in runs), 1)
    return result


async def run(args: argparse.Namespace, bootstrap: str | None, dsn: str | None) -> dict[str, Any]:
    prefix = f"bench-snap-{uuid.uuid4().hex[:8]}"
    store: SnapshotStore
    if args.embedded:
        log: Log = EmbeddedLog(partitions=1, fsync=False, topic_prefix=prefix)
        store = MemorySnapshotStore()
    else:
        assert bootstrap is not None
        assert dsn is not None
        schema = prefix.replace("-", "_")
        log = KafkaLog(bootstrap, topic_prefix=prefix, partitions=1, client_id=prefix)
        store = PostgresSnapshotStore(dsn, schema)
    engine = Engine(flows=[FLOW], handlers=[noop], log=log,
                    processor_group=f"{prefix}-processor", snapshots=store,
                    snapshot_every=args.snapshot_every)
    try:
        async with engine:
            started = time.perf_counter()
            executions = await fill(engine, args.events, args.concurrency)
            fill_s = time.perf_counter() - started
            end = await engine.log.end_offset(engine.topics.events, 0)

            def fresh_log() -> Log:
                if args.embedded:
                    return engine.log  # in memory: only this instance holds the records
                return KafkaLog(bootstrap or "", topic_prefix=prefix, partitions=1,
                                client_id=f"{prefix}-r")

            full = await measure(fresh_log, engine, None, args.repeat)
            snap = await measure(fresh_log, engine, store, args.repeat)
            loaded = await store.load(engine.topics.events, 0)
            return {
                "log": "embedded" if args.embedded else "kafka+postgres",
                "events_offset_end": end, "executions": executions,
                "fill_s": round(fill_s, 1), "snapshot_bytes": len(loaded.state) if loaded
                else None,
                "full_replay": full, "snapshot_plus_tail": snap,
                "speedup_wall": round(full["wall_ms"] / snap["wall_ms"], 1),
            }
    finally:
        if dsn is not None and not args.embedded:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'drop schema if exists "{prefix.replace("-", "_")}" '
                                   "cascade")
            finally:
                await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--snapshot-every", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--embedded", action="store_true",
                        help="the in-memory embedded log and snapshot store (CPU only)")
    args = parser.parse_args()
    if args.embedded:
        print(json.dumps(asyncio.run(run(args, None, None)), indent=2))
        return
    services = services_from_env()
    try:
        bootstrap, dsn = services.kafka_bootstrap(), services.postgres_dsn()
        print(json.dumps(asyncio.run(run(args, bootstrap, dsn)), indent=2))
    finally:
        services.close()


if __name__ == "__main__":
    main()
