"""The embedded benchmark's 5-step flow on Kafka + PostgreSQL, exactly once.

The engine runs as a small deployment would: processors in a Kafka consumer group (a
transactional writer per partition: events and command offsets in one transaction),
and a projector applying every event to PostgreSQL (rows and consumer offsets in one
database transaction). By default all of it runs in this process; ``--split`` runs the
processors in a ``flowmonkey processor`` process of their own (so Python uses two
cores), leaving the clients and the projector here. Clients wait for answers through
the projection, so every figure is end to end.

Two phases:

* ``max``: a closed loop at ``--concurrency`` executions in flight: steps/s.
* ``half``: an open loop that starts executions at half the measured step rate
  (``--rate`` overrides it): p50/p99 step latency and projection lag at that load.

Figures per phase:

* ``step_latency_ms``: the wall time between an execution's consecutive
  ``step.completed`` events as seen after the projection applied them: what a
  watching client sees (steps committed in one transaction arrive together);
* ``processor_step_ms``: the time between consecutive step decisions by the events'
  timestamps (the processor's clock, 1 ms resolution): the processing pace itself;
* ``execution_ms``: from the create call to the completion being visible (5 steps);
* ``projection_lag_ms``: per event, from its timestamp (decided) to its projection;
* ``projector_batches``, ``projector_events_per_batch`` and ``projector_busy``: the
  in-process projector's database transactions, and the share of the phase it spent
  in them (near 1: the projector paces the run).

The ``max`` phase also reports the CPU each process spent per step
(``cpu_us_per_step_by_process``: this engine, a ``--split`` processor, and the broker
and PostgreSQL, whether this script started them or found them listening on their
ports), their total, and
``cpu_bound_steps_per_s``: the steps/s that total allows on this machine's cores. When
it is near ``steps_per_s``, CPU is what limits the run (see ``bench/cpu_meter.py``).

Services: ``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP`` / ``FLOWMONKEY_TEST_POSTGRES_DSN`` point at
running ones; otherwise the test services start a local Kafka and PostgreSQL (as
``make test`` does; the Kafka jars must have been fetched:
``python -m flowmonkey.testing.services fetch-kafka``).

    python bench/kafka_throughput.py                       # both phases
    python bench/kafka_throughput.py --executions 4000 --concurrency 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from flowmonkey import Engine, EngineOptions, Event, EventDispatcher, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import KafkaLog
from flowmonkey.model.result import StepResult
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.runtime.gc_tuning import tune_gc
from flowmonkey.testing.services import TestServices, services_from_env

sys.path.insert(0, str(Path(__file__).parent))
# beside this script; also found when `flowmonkey processor --app` loads it by path
from cpu_meter import CpuMeter, listener_pid, postmaster_pid

STEPS = 5
PARTITIONS = 4


@handler("bench-noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"n": 1})


def bench_flow() -> dict[str, Any]:
    steps = {f"s{i}": {"id": f"s{i}", "type": "bench-noop", "outputKey": f"s{i}",
                       "transitions": {"onSuccess": f"s{i + 1}" if i + 1 < STEPS else None}}
             for i in range(STEPS)}
    return {"id": "bench", "version": "1", "initialStepId": "s0", "steps": steps}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


flows = [bench_flow()]  # for `flowmonkey processor --app bench/kafka_throughput.py`
handlers = [noop]


class Observer:
    """Latencies, projection lag and completions, from events after projection."""

    def __init__(self) -> None:
        self.latencies: list[float] = []  # visible step latency
        self.processor_steps: list[float] = []  # between step decisions, by event time
        self.executions: list[float] = []  # create call -> completion visible
        self.lags: list[float] = []
        self.last_seen: dict[str, float] = {}
        self.last_decided: dict[str, int] = {}
        self.done: dict[str, asyncio.Future[None]] = {}
        self.recording = True

    def dispatcher(self) -> EventDispatcher:
        dispatcher = EventDispatcher(mode="sync")
        dispatcher.on("*", self.on_event)
        return dispatcher

    def on_event(self, event: Event) -> None:
        if event.seq <= 0:
            return  # registry notices, not log events
        now = time.perf_counter()
        if self.recording:
            self.lags.append(max(0.0, time.time() * 1000 - event.timestamp_ms))
        if event.type == "step.completed":
            previous = self.last_seen.get(event.execution_id)
            if previous is not None and self.recording:
                self.latencies.append((now - previous) * 1000)
            self.last_seen[event.execution_id] = now
            decided = self.last_decided.get(event.execution_id)
            if decided is not None and self.recording:
                self.processor_steps.append(float(event.timestamp_ms - decided))
            self.last_decided[event.execution_id] = event.timestamp_ms
        elif event.type in ("execution.completed", "execution.failed"):
            future = self.done.get(event.execution_id)
            if future is not None and not future.done():
                future.set_result(None)

    async def run_one(self, engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        execution_id = str(uuid.uuid4())
        future = self.done[execution_id] = loop.create_future()
        self.last_seen[execution_id] = started
        await engine.create("bench", {}, execution_id=execution_id)
        await asyncio.wait_for(future, 120)
        self.executions.append((time.perf_counter() - started) * 1000)
        self.done.pop(execution_id, None)
        self.last_seen.pop(execution_id, None)
        self.last_decided.pop(execution_id, None)

    def reset(self) -> None:
        for values in (self.latencies, self.processor_steps, self.executions, self.lags):
            values.clear()


class ProjectorMeter:
    """The in-process projector's batches over a phase, from the engine's metrics: how
    many, their mean size, and the share of the phase spent applying them (``busy``
    near 1 means the projector paces the run)."""

    def __init__(self, engine: Engine) -> None:
        self.registry = engine.metrics.registry

    def read(self) -> tuple[float, float, float, float]:
        def value(name: str) -> float:
            return self.registry.get_sample_value(name) or 0.0
        return (value("flowmonkey_projector_batches_total"),
                value("flowmonkey_projector_events_applied_total"),
                value("flowmonkey_projector_batch_seconds_sum"), time.perf_counter())

    def figures(self, before: tuple[float, float, float, float]) -> dict[str, Any]:
        batches, events, busy, now = (a - b for a, b in zip(self.read(), before, strict=True))
        return {"projector_batches": int(batches),
                "projector_events_per_batch": round(events / batches, 1) if batches else 0,
                "projector_busy": round(busy / now, 2) if now > 0 else 0}


async def closed_loop(engine: Engine, observer: Observer, total: int,
                      concurrency: int, meter: CpuMeter | None = None) -> dict[str, Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await observer.run_one(engine)

    observer.reset()
    cpu_before = meter.read() if meter is not None else {}
    projector = ProjectorMeter(engine)
    projector_before = projector.read()
    began, cpu_began = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    steps = total * STEPS
    return {"phase": "max", "concurrency": concurrency, "executions": total,
            "steps": steps, "seconds": round(elapsed, 3),
            "steps_per_s": round(steps / elapsed, 1),
            # this process only (not the broker, PostgreSQL or a --split processor)
            "cpu_us_per_step": round(cpu / steps * 1e6), **_figures(observer),
            **projector.figures(projector_before),
            **(meter.per_step(cpu_before, steps) if meter is not None else {})}


async def open_loop(engine: Engine, observer: Observer, steps_per_s: float,
                    seconds: float) -> dict[str, Any]:
    rate = steps_per_s / STEPS  # executions started per second
    total = max(1, int(rate * seconds))
    observer.reset()
    projector = ProjectorMeter(engine)
    projector_before = projector.read()
    tasks: list[asyncio.Task[None]] = []
    began = time.perf_counter()
    for i in range(total):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(observer.run_one(engine)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    return {"phase": "half", "target_steps_per_s": round(steps_per_s, 1), "executions": total,
            "steps": total * STEPS, "seconds": round(elapsed, 3),
            "steps_per_s": round(total * STEPS / elapsed, 1), **_figures(observer),
            **projector.figures(projector_before)}


def _figures(observer: Observer) -> dict[str, Any]:
    return {
        "step_latency_ms_p50": round(percentile(observer.latencies, 0.50), 2),
        "step_latency_ms_p99": round(percentile(observer.latencies, 0.99), 2),
        "processor_step_ms_p50": percentile(observer.processor_steps, 0.50),
        "processor_step_ms_p99": percentile(observer.processor_steps, 0.99),
        "execution_ms_p50": round(percentile(observer.executions, 0.50), 1),
        "execution_ms_p99": round(percentile(observer.executions, 0.99), 1),
        "projection_lag_ms_p50": round(percentile(observer.lags, 0.50), 1),
        "projection_lag_ms_p99": round(percentile(observer.lags, 0.99), 1),
        "projection_lag_ms_max": round(max(observer.lags, default=0.0), 1),
    }


async def run(args: argparse.Namespace, bootstrap: str, dsn: str,
              service_pids: dict[str, int | None]) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    schema = f"bench_{run_id}"
    observer = Observer()
    prefix = f"bench-{run_id}"
    engine = Engine(
        flows=[bench_flow()], handlers=[noop], dispatcher=observer.dispatcher(),
        options=EngineOptions(timeout_ms=60_000),
        log=KafkaLog(bootstrap, topic_prefix=prefix, partitions=args.partitions,
                     exactly_once=True, client_id=prefix),
        projection=PostgresProjection(dsn, schema=schema) if not args.memory else None,
        processor_group=prefix, run_processors=not args.split)
    processor: subprocess.Popen[str] | None = None
    try:
        async with engine:
            if args.split:
                processor = await _start_processor(bootstrap, prefix, args.partitions)
            else:
                assert engine.group_processors is not None
                await engine.group_processors.wait_assigned(60)
            if args.tune_gc:
                tune_gc()
            print(f"warming up: {args.warmup} executions …", file=sys.stderr)
            await closed_loop(engine, observer, args.warmup, min(args.warmup, args.concurrency))
            print(f"max: {args.executions} executions at concurrency {args.concurrency} …",
                  file=sys.stderr)
            meter = CpuMeter({"engine": os.getpid(),
                              "processors": processor.pid if processor else None,
                              **service_pids})
            peak = await closed_loop(engine, observer, args.executions, args.concurrency,
                                     meter)
            rate = args.rate or peak["steps_per_s"] / 2
            print(f"half: {rate:.0f} steps/s for {args.seconds}s …", file=sys.stderr)
            half = await open_loop(engine, observer, rate, args.seconds)
    finally:
        if processor is not None:
            processor.terminate()
            processor.wait(30)
        await _drop_schema(dsn, schema)
    return {"benchmark": "kafka_throughput", "flow_steps": STEPS, "exactly_once": True,
            "partitions": args.partitions, "layout": "split" if args.split else "one process",
            "projection": "memory" if args.memory else "postgres", "tuned_gc": args.tune_gc,
            "results": [peak, half],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _spawn_processor(bootstrap: str, prefix: str, partitions: int) -> subprocess.Popen[str]:
    env = {**os.environ, "FLOWMONKEY_KAFKA_BOOTSTRAP": bootstrap,
           "FLOWMONKEY_TOPIC_PREFIX": prefix, "FLOWMONKEY_PARTITIONS": str(partitions)}
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("flowmonkey")), "processor", "--app", __file__,
         "--group", prefix, "--progress-every", "0.2", "--step-timeout-ms", "60000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


async def _start_processor(bootstrap: str, prefix: str,
                           partitions: int) -> subprocess.Popen[str]:
    """``flowmonkey processor`` with this module's flow; returns once it owns every
    partition (its progress lines say which it owns)."""
    proc = _spawn_processor(bootstrap, prefix, partitions)
    wanted = "partitions " + ",".join(str(p) for p in range(partitions)) + ":"
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(proc.stdout.readline)
        if not line:
            break
        if wanted in line:
            # keep draining its output so the pipe never fills
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc
    proc.kill()
    raise RuntimeError("the processor process did not take the partitions in time")


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'drop schema if exists "{schema}" cascade')
    finally:
        await conn.close()


def service_pids(services: TestServices, bootstrap: str, dsn: str) -> dict[str, int | None]:
    """The broker's and PostgreSQL's pids for the CPU meter: those started here by
    their process, others (named by the FLOWMONKEY_TEST_* variables) by the local
    process listening on their port."""
    return {"broker": services.kafka.process.pid
            if services.kafka and services.kafka.process
            else listener_pid(int(bootstrap.split(",")[0].rsplit(":", 1)[1])),
            "postgres": postmaster_pid(services.postgres.data_dir)
            if services.postgres else listener_pid(urlsplit(dsn).port or 5432)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    parser.add_argument("--warmup", type=int, default=200,
                        help="executions run before measuring (default 200); a broker "
                             "started just before spends much of its CPU compiling (JIT) "
                             "for a minute or so, and several thousand let that settle")
    parser.add_argument("--rate", type=float, help="steps/s of the half-load phase")
    parser.add_argument("--tune-gc", action="store_true",
                        help="tune this process's garbage collector "
                             "(flowmonkey.runtime.gc_tuning), as the processor and "
                             "projector commands do by default")
    parser.add_argument("--split", action="store_true",
                        help="run the processors in a `flowmonkey processor` process")
    parser.add_argument("--memory", action="store_true",
                        help="project into memory instead of PostgreSQL (to isolate Kafka)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="duration of the half-load phase (default 10)")
    args = parser.parse_args()
    services = services_from_env()
    try:
        bootstrap, dsn = services.kafka_bootstrap(), services.postgres_dsn()
        pids = service_pids(services, bootstrap, dsn)
        print(json.dumps(asyncio.run(run(args, bootstrap, dsn, pids)), indent=2))
    finally:
        services.close()


if __name__ == "__main__":
    main()
