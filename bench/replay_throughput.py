"""Replay speed, and the memory of executions waiting on a signal (issue 15's goals).

Two figures of reading the log back, on a log of ``--executions`` runs of the 5-step
flow (one events partition on the durable embedded log, with the PostgreSQL
projection applied as they ran; ``--kafka``: on Kafka, exactly once, + PostgreSQL):

* ``rebuild``: a fresh partition processor's ``recover()`` from offset 0, no snapshot
  (``bench/snapshot_recovery.py``'s measurement): events/s;
* ``verify_all``: what ``flowmonkey replay --verify-all`` runs
  (:func:`flowmonkey.projections.audit.verify_all`): every execution folded from the
  log and compared with its projection row: events/s.

And ``waiting``: ``--waiting`` executions (default 100,000) parked on
``Result.wait_for_signal`` in one embedded engine (durable log: the records are on disk,
so what grows is the state the processor keeps). It reports the process's RSS growth and,
in a second run of its own (tracing slows everything and costs memory itself), the
Python heap growth tracemalloc sees. Each measurement runs in a subprocess.

Goals: replay ≥ 100,000 events/s; 100,000 waiting executions ≤ 200 MB.

Services: as ``bench/kafka_throughput.py`` (``FLOWMONKEY_TEST_POSTGRES_DSN`` /
``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP``, or the test services start local ones).

    python bench/replay_throughput.py
    python bench/replay_throughput.py --executions 20000 --waiting 100000 --kafka
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import kafka_throughput
import snapshot_recovery

from flowmonkey import Engine, EngineOptions, Event, EventDispatcher, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import EmbeddedLog, KafkaLog
from flowmonkey.log.base import Log
from flowmonkey.model.result import StepResult
from flowmonkey.projections.audit import ProjectionRows, verify_all
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.testing.services import services_from_env
from flowmonkey.testing.services_common import ENV_KAFKA_BOOTSTRAP, ENV_POSTGRES_DSN

GOALS = {"events_per_s": 100_000, "waiting_100k_mib": 200}


@handler("bench-signal")
async def wait_for_signal(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("bench", timeout_ms=24 * 3_600_000)


WAIT_FLOW = {"id": "bench-wait", "version": "1", "initialStepId": "ask",
             "steps": {"ask": {"id": "ask", "type": "bench-signal", "outputKey": "answer",
                               "transitions": {"onResume": None}}}}


def _make_log(kafka: bool, path: str, prefix: str, bootstrap: str | None) -> Log:
    if kafka:
        assert bootstrap is not None
        return KafkaLog(bootstrap, topic_prefix=prefix, partitions=1, exactly_once=True,
                        client_id=f"{prefix}-{uuid.uuid4().hex[:4]}")
    return EmbeddedLog(path=path, partitions=1, topic_prefix=prefix)


async def replay(args: argparse.Namespace, dsn: str, bootstrap: str | None) -> dict[str, Any]:
    prefix = f"bench-replay-{uuid.uuid4().hex[:8]}"
    schema = prefix.replace("-", "_")
    tmp = tempfile.TemporaryDirectory()
    engine = Engine(flows=[snapshot_recovery.FLOW], handlers=[snapshot_recovery.noop],
                    log=_make_log(args.kafka, tmp.name, prefix, bootstrap),
                    projection=PostgresProjection(dsn, schema=schema),
                    processor_group=f"{prefix}-processor")
    try:
        async with engine:
            print(f"filling: {args.executions} executions …", file=sys.stderr)
            began = time.perf_counter()
            executions = await _fill(engine, args.executions, args.concurrency)
            fill_s = time.perf_counter() - began
        out: dict[str, Any] = {"log": "kafka+postgres" if args.kafka else "embedded durable",
                               "executions": executions, "fill_s": round(fill_s, 1)}
        print("rebuild …", file=sys.stderr)
        log = _make_log(args.kafka, tmp.name, prefix, bootstrap)
        await log.start()
        try:
            rebuilt = await snapshot_recovery.recover_once(log, engine, None)
            print("verify-all …", file=sys.stderr)
            conn = await asyncpg.connect(dsn)
            try:
                rows = ProjectionRows(conn, schema)
                await rows.check()
                began, cpu = time.perf_counter(), time.process_time()
                report = await verify_all(rows, log, engine.topics.events)
                wall, cpu = time.perf_counter() - began, time.process_time() - cpu
            finally:
                await conn.close()
        finally:
            await log.close()
        events = rebuilt["records_replayed"]
        out["rebuild"] = {"events": events, "seconds": round(rebuilt["wall_ms"] / 1000, 3),
                          "events_per_s": round(events / rebuilt["wall_ms"] * 1000),
                          "cpu_s": round(rebuilt["cpu_ms"] / 1000, 3),
                          # steadier than wall time on a shared machine
                          "events_per_cpu_s": round(events / rebuilt["cpu_ms"] * 1000),
                          "executions": rebuilt["executions"]}
        out["verify_all"] = {"events": report.events_read, "seconds": round(wall, 3),
                             "events_per_s": round(report.events_read / wall),
                             "cpu_s": round(cpu, 3),
                             "events_per_cpu_s": round(report.events_read / cpu),
                             "checked": report.checked,
                             "ok": report.ok}
        for name in ("rebuild", "verify_all"):
            out[name]["goal_met"] = out[name]["events_per_s"] >= GOALS["events_per_s"]
        return out
    finally:
        await kafka_throughput._drop_schema(dsn, schema)
        tmp.cleanup()


async def _fill(engine: Engine, total: int, concurrency: int) -> int:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            created = await engine.create("bench", {})
            await engine.wait(created.execution.id, timeout_s=120)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    return total


async def waiting(count: int, trace: bool, concurrency: int) -> dict[str, Any]:
    """``count`` executions parked on a signal in this process: RSS growth (or, with
    ``trace``, the heap growth tracemalloc sees) once every one of them waits."""
    parked = 0
    all_parked = asyncio.get_running_loop().create_future()

    def on_waiting(event: Event) -> None:
        nonlocal parked
        parked += 1
        if parked == count and not all_parked.done():
            all_parked.set_result(None)

    dispatcher = EventDispatcher(mode="sync")
    dispatcher.on("execution.waiting", on_waiting)
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(flows=[WAIT_FLOW], handlers=[wait_for_signal],
                        log=EmbeddedLog(path=tmp, partitions=4), dispatcher=dispatcher,
                        options=EngineOptions(timeout_ms=60_000))
        async with engine:
            gc.collect()
            if trace:
                tracemalloc.start()
            rss_before = process.memory_info().rss
            began = time.perf_counter()
            remaining = count

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await engine.create("bench-wait", {})

            await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
            await asyncio.wait_for(all_parked, 600)
            elapsed = time.perf_counter() - began
            gc.collect()
            out: dict[str, Any] = {"executions": count, "fill_s": round(elapsed, 1)}
            if trace:
                traced, _ = tracemalloc.get_traced_memory()
                out["tracemalloc_mib"] = round(traced / 2**20, 1)
                out["tracemalloc_bytes_per_execution"] = round(traced / count)
                tracemalloc.stop()
            else:
                delta = process.memory_info().rss - rss_before
                out["rss_delta_mib"] = round(delta / 2**20, 1)
                out["rss_bytes_per_execution"] = round(delta / count)
                out["rss_mib"] = round(process.memory_info().rss / 2**20, 1)
            return out


def _child(args: argparse.Namespace, what: str) -> dict[str, Any]:
    waiting = args.trace_waiting if what == "trace" else args.waiting
    command = [sys.executable, __file__, "--child", what, "--executions",
               str(args.executions), "--concurrency", str(args.concurrency),
               "--waiting", str(waiting), *(["--kafka"] if args.kafka else [])]
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=10_000,
                        help="executions in the replayed log (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=500,
                        help="executions in flight while filling (default 500)")
    parser.add_argument("--waiting", type=int, default=100_000,
                        help="executions parked on a signal (default 100,000; 0: skip)")
    parser.add_argument("--trace-waiting", type=int, default=20_000,
                        help="executions parked in the tracemalloc run (default 20,000: "
                             "tracing is slow; its figures are per execution and scaled "
                             "to 100,000; 0: skip it)")
    parser.add_argument("--kafka", action="store_true",
                        help="replay a Kafka + PostgreSQL log instead of the embedded one")
    parser.add_argument("--child", choices=["replay", "rss", "trace"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child in ("rss", "trace"):
        print(json.dumps(asyncio.run(waiting(args.waiting, args.child == "trace",
                                             args.concurrency))))
        return
    if args.child == "replay":
        bootstrap = os.environ.get(ENV_KAFKA_BOOTSTRAP) if args.kafka else None
        print(json.dumps(asyncio.run(replay(args, os.environ[ENV_POSTGRES_DSN], bootstrap))))
        return
    services = services_from_env()
    try:
        os.environ[ENV_POSTGRES_DSN] = services.postgres_dsn()
        if args.kafka:
            os.environ[ENV_KAFKA_BOOTSTRAP] = services.kafka_bootstrap()
        result: dict[str, Any] = {"benchmark": "replay_throughput",
                                  "replay": _child(args, "replay")}
        if args.waiting:
            print(f"waiting: {args.waiting} executions …", file=sys.stderr)
            memory = _child(args, "rss")
            if args.trace_waiting:
                print(f"waiting, traced: {args.trace_waiting} executions …", file=sys.stderr)
                traced = _child(args, "trace")
                memory["tracemalloc_executions"] = traced["executions"]
                memory["tracemalloc_bytes_per_execution"] = \
                    traced["tracemalloc_bytes_per_execution"]
                memory["tracemalloc_mib_per_100k"] = round(
                    traced["tracemalloc_bytes_per_execution"] * 100_000 / 2**20, 1)
            scaled = memory["rss_delta_mib"] * 100_000 / args.waiting
            memory["rss_delta_mib_per_100k"] = round(scaled, 1)
            memory["goal_met"] = scaled <= GOALS["waiting_100k_mib"]
            result["waiting"] = memory
        result["goals"] = {"replay events/s": f">= {GOALS['events_per_s']:,}",
                           "100,000 waiting executions": f"<= {GOALS['waiting_100k_mib']} MB"}
    finally:
        services.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
