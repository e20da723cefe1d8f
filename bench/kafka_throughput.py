"""The embedded benchmark's 5-step flow on Kafka + PostgreSQL, exactly once.

One process runs the engine the way a small deployment would: processors in a Kafka
consumer group (a transactional writer per partition: events and command offsets in
one transaction), and the projector applying every event to PostgreSQL (rows and
consumer offsets in one database transaction). Clients wait for answers through the
projection, so every figure is end to end.

Two phases:

* ``max``: a closed loop at ``--concurrency`` executions in flight: steps/s.
* ``half``: an open loop that starts executions at half the measured step rate
  (``--rate`` overrides it): p50/p99 step latency and projection lag at that load.

Step latency is the wall time between an execution's consecutive ``step.completed``
events as seen after the projection applied them (the first step counts from the
create call). Projection lag is, per event, the time from the event's timestamp
(when the processor decided it) to its projection into PostgreSQL.

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
import resource
import sys
import time
import uuid
from typing import Any

import asyncpg

from flowmonkey import Engine, EngineOptions, Event, EventDispatcher, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import KafkaLog
from flowmonkey.model.result import StepResult
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.testing.services import services_from_env

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


class Observer:
    """Step latencies, projection lag and completions, from events after projection."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.last_seen: dict[str, float] = {}
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
        self.done.pop(execution_id, None)
        self.last_seen.pop(execution_id, None)

    def reset(self) -> None:
        self.latencies.clear()
        self.lags.clear()


async def closed_loop(engine: Engine, observer: Observer, total: int,
                      concurrency: int) -> dict[str, Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await observer.run_one(engine)

    observer.reset()
    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed = time.perf_counter() - began
    return {"phase": "max", "concurrency": concurrency, "executions": total,
            "steps": total * STEPS, "seconds": round(elapsed, 3),
            "steps_per_s": round(total * STEPS / elapsed, 1), **_figures(observer)}


async def open_loop(engine: Engine, observer: Observer, steps_per_s: float,
                    seconds: float) -> dict[str, Any]:
    rate = steps_per_s / STEPS  # executions started per second
    total = max(1, int(rate * seconds))
    observer.reset()
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
            "steps_per_s": round(total * STEPS / elapsed, 1), **_figures(observer)}


def _figures(observer: Observer) -> dict[str, Any]:
    return {
        "step_latency_ms_p50": round(percentile(observer.latencies, 0.50), 2),
        "step_latency_ms_p99": round(percentile(observer.latencies, 0.99), 2),
        "projection_lag_ms_p50": round(percentile(observer.lags, 0.50), 1),
        "projection_lag_ms_p99": round(percentile(observer.lags, 0.99), 1),
        "projection_lag_ms_max": round(max(observer.lags, default=0.0), 1),
    }


async def run(args: argparse.Namespace, bootstrap: str, dsn: str) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    schema = f"bench_{run_id}"
    observer = Observer()
    engine = Engine(
        flows=[bench_flow()], handlers=[noop], dispatcher=observer.dispatcher(),
        options=EngineOptions(timeout_ms=60_000),
        log=KafkaLog(bootstrap, topic_prefix=f"bench-{run_id}", partitions=args.partitions,
                     exactly_once=True, client_id=f"bench-{run_id}"),
        projection=PostgresProjection(dsn, schema=schema) if not args.memory else None,
        topic_prefix=f"bench-{run_id}", processor_group=f"bench-{run_id}")
    try:
        async with engine:
            assert engine.group_processors is not None
            await engine.group_processors.wait_assigned(60)
            print("warming up …", file=sys.stderr)
            await closed_loop(engine, observer, 200, 50)
            print(f"max: {args.executions} executions at concurrency {args.concurrency} …",
                  file=sys.stderr)
            peak = await closed_loop(engine, observer, args.executions, args.concurrency)
            rate = args.rate or peak["steps_per_s"] / 2
            print(f"half: {rate:.0f} steps/s for {args.seconds}s …", file=sys.stderr)
            half = await open_loop(engine, observer, rate, args.seconds)
    finally:
        await _drop_schema(dsn, schema)
    return {"benchmark": "kafka_throughput", "flow_steps": STEPS, "exactly_once": True,
            "partitions": args.partitions, "results": [peak, half],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'drop schema if exists "{schema}" cascade')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    parser.add_argument("--rate", type=float, help="steps/s of the half-load phase")
    parser.add_argument("--memory", action="store_true",
                        help="project into memory instead of PostgreSQL (to isolate Kafka)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="duration of the half-load phase (default 10)")
    args = parser.parse_args()
    services = services_from_env()
    try:
        bootstrap, dsn = services.kafka_bootstrap(), services.postgres_dsn()
        print(json.dumps(asyncio.run(run(args, bootstrap, dsn)), indent=2))
    finally:
        services.close()


if __name__ == "__main__":
    main()
