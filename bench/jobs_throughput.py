"""Jobs on Kafka + PostgreSQL: what a step run by a worker costs beside a stateless one.

The deployment is the one of ``kafka_throughput.py`` (processors in a Kafka consumer
group, exactly once; a projector into PostgreSQL; all in this process, or the
processors in a ``flowmonkey processor`` process with ``--split``), plus ``--workers``
``flowmonkey worker`` processes (default 2) that claim and run the jobs. Clients wait
for answers through the projection, so every figure is end to end.

Two phases, each a closed loop of ``--executions`` one-step flows at ``--concurrency``
in flight, whose step's handler returns at once (one step each, so per execution is
per step and per job):

* ``jobs``: the handler is stateful, so the step is a job: created by the processor,
  claimed by a worker (a ``job.claim`` command), run there and completed (a
  ``job.complete`` command). Besides the figures below: ``jobs_per_s_by_event_time``
  (completed jobs over the span from the first ``job.created`` to the last
  ``job.completed``, by the events' timestamps), ``claim_latency_ms`` (the kernel's
  ``claim_latency_ms`` of every ``job.claimed``: offered to claimed),
  ``job_latency_ms`` (``job.created`` to ``job.completed``, by event time) and
  ``job_events_per_job`` (the ``job.*`` events among the execution's).
* ``stateless``: the same flow with a stateless handler, run inside the processor.

Then, unless ``--serial 0``, the phases ``jobs_serial`` and ``stateless_serial`` run
``--serial`` executions of each flow one at a time: the latencies without queueing
(and no CPU figures: idle processes' polling would be most of them).

Every phase reports ``per_s`` (executions completed over the wall time: jobs/s or
steps/s), ``execution_ms`` (from the create call to the completion being visible: a
client's view of the step), ``processor_ms`` (``execution.created`` to
``execution.completed`` by event time: the step's span on the log),
``events_per_execution``, the projector's batches (as in ``kafka_throughput.py``) and
the CPU each process spent per execution (``cpu_us_per_step_by_process``: this
engine, a ``--split`` processor, each worker, the broker and PostgreSQL; see
``cpu_meter.py``). ``job_vs_stateless`` compares them (job / stateless): throughput,
latency and CPU ratios, the extra events a job step writes, and (serial) the latency
it adds.

Services: ``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP`` / ``FLOWMONKEY_TEST_POSTGRES_DSN`` point at
running ones; otherwise the test services start a local Kafka and PostgreSQL (the
Kafka jars must have been fetched: ``python -m flowmonkey.testing.services fetch-kafka``).

    python bench/jobs_throughput.py                     # every phase, 2 workers
    python bench/jobs_throughput.py --executions 4000 --concurrency 400 --split
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
from flowmonkey.testing.services import services_from_env

sys.path.insert(0, str(Path(__file__).parent))
# beside this script; also found when `flowmonkey worker --app` loads it by path
from cpu_meter import CpuMeter, listener_pid, postmaster_pid
from kafka_throughput import ProjectorMeter, percentile

PARTITIONS = 4
JOB_FLOW = "bench-jobs"
STATELESS_FLOW = "bench-stateless"


@handler("bench-job", stateful=True)
async def job_noop(params: HandlerParams) -> StepResult:
    return Result.success({"n": 1})


@handler("bench-step")
async def step_noop(params: HandlerParams) -> StepResult:
    return Result.success({"n": 1})


def one_step_flow(flow_id: str, step_type: str) -> dict[str, Any]:
    return {"id": flow_id, "version": "1", "initialStepId": "s",
            "steps": {"s": {"id": "s", "type": step_type, "outputKey": "s",
                            "transitions": {"onSuccess": None}}}}


# for `flowmonkey processor|worker --app bench/jobs_throughput.py`
flows = [one_step_flow(JOB_FLOW, "bench-job"), one_step_flow(STATELESS_FLOW, "bench-step")]
handlers = [job_noop, step_noop]


class Trace:
    """One execution's events, as the projection applied them."""

    __slots__ = ("claim_latency", "completed_at", "created_at", "events", "job_completed_at",
                 "job_created_at", "job_events")

    def __init__(self) -> None:
        self.events = 0
        self.job_events = 0
        self.created_at: int | None = None  # event timestamps, ms (the processor's clock)
        self.completed_at: int | None = None
        self.job_created_at: int | None = None
        self.job_completed_at: int | None = None
        self.claim_latency: int | None = None


class Observer:
    """Per-execution traces and completion futures, from events after projection."""

    def __init__(self) -> None:
        self.traces: dict[str, Trace] = {}
        self.executions: list[float] = []  # create call -> completion visible, ms
        self.done: dict[str, asyncio.Future[None]] = {}
        self.failed = 0

    def dispatcher(self) -> EventDispatcher:
        dispatcher = EventDispatcher(mode="sync")
        dispatcher.on("*", self.on_event)
        return dispatcher

    def on_event(self, event: Event) -> None:
        if event.seq <= 0:
            return  # registry notices, not log events
        trace = self.traces.get(event.execution_id)
        if trace is None:
            return  # not this phase's (a late warm-up event)
        trace.events += 1
        kind = event.type
        if kind.startswith("job."):
            trace.job_events += 1
        if kind == "execution.created":
            trace.created_at = event.timestamp_ms
        elif kind == "job.created":
            trace.job_created_at = event.timestamp_ms
        elif kind == "job.claimed":
            trace.claim_latency = int(event.data["claim_latency_ms"])
        elif kind == "job.completed":
            trace.job_completed_at = event.timestamp_ms
        elif kind in ("execution.completed", "execution.failed", "execution.cancelled"):
            trace.completed_at = event.timestamp_ms
            if kind != "execution.completed":
                self.failed += 1
            future = self.done.get(event.execution_id)
            if future is not None and not future.done():
                future.set_result(None)

    async def run_one(self, engine: Engine, flow_id: str) -> None:
        loop = asyncio.get_running_loop()
        execution_id = str(uuid.uuid4())
        self.traces[execution_id] = Trace()
        future = self.done[execution_id] = loop.create_future()
        started = time.perf_counter()
        await engine.create(flow_id, {}, execution_id=execution_id)
        await asyncio.wait_for(future, 120)
        self.executions.append((time.perf_counter() - started) * 1000)
        self.done.pop(execution_id, None)

    def reset(self) -> None:
        self.traces.clear()
        self.executions.clear()
        self.failed = 0


def _p(values: list[float], digits: int = 1) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.50), digits),
            "p99": round(percentile(values, 0.99), digits)}


async def closed_loop(engine: Engine, observer: Observer, flow_id: str, total: int,
                      concurrency: int, meter: CpuMeter | None = None) -> dict[str, Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await observer.run_one(engine, flow_id)

    observer.reset()
    cpu_before = meter.read() if meter is not None else {}
    projector = ProjectorMeter(engine)
    projector_before = projector.read()
    began = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed = time.perf_counter() - began
    traces = list(observer.traces.values())
    processor_ms = [float(t.completed_at - t.created_at) for t in traces
                    if t.completed_at is not None and t.created_at is not None]
    figures: dict[str, Any] = {
        "executions": total, "concurrency": concurrency, "seconds": round(elapsed, 3),
        "failed": observer.failed, "per_s": round(total / elapsed, 1),
        "execution_ms": _p(observer.executions), "processor_ms": _p(processor_ms),
        "events_per_execution": round(sum(t.events for t in traces) / total, 2),
        **projector.figures(projector_before),
        **(meter.per_step(cpu_before, total) if meter is not None else {})}
    if flow_id == JOB_FLOW:
        figures.update(_job_figures(traces, total))
    return figures


def _job_figures(traces: list[Trace], total: int) -> dict[str, Any]:
    claims = [float(t.claim_latency) for t in traces if t.claim_latency is not None]
    spans = [(t.job_created_at, t.job_completed_at) for t in traces
             if t.job_created_at is not None and t.job_completed_at is not None]
    first = min((c for c, _ in spans), default=0)
    last = max((d for _, d in spans), default=0)
    return {
        "jobs_completed": len(spans),
        "jobs_per_s_by_event_time": round(len(spans) / ((last - first) / 1000), 1)
        if last > first else None,
        "claim_latency_ms": _p(claims), "claims_seen": len(claims),
        "job_latency_ms": _p([float(d - c) for c, d in spans]),
        "job_events_per_job": round(sum(t.job_events for t in traces) / total, 2)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _compare(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a job step costs beside a stateless one (job / stateless)."""
    jobs, stateless = results["jobs"], results["stateless"]
    compared = {
        "throughput_ratio": _ratio(jobs["per_s"], stateless["per_s"]),
        "execution_ms_p50_ratio": _ratio(jobs["execution_ms"]["p50"],
                                         stateless["execution_ms"]["p50"]),
        "execution_ms_p99_ratio": _ratio(jobs["execution_ms"]["p99"],
                                         stateless["execution_ms"]["p99"]),
        "extra_events_per_step": round(jobs["events_per_execution"]
                                       - stateless["events_per_execution"], 2),
        "cpu_ratio": _ratio(jobs.get("cpu_us_per_step_total"),
                            stateless.get("cpu_us_per_step_total"))}
    if "jobs_serial" in results:
        serial_jobs, serial = results["jobs_serial"], results["stateless_serial"]
        compared |= {
            "serial_execution_ms_p50_ratio": _ratio(serial_jobs["execution_ms"]["p50"],
                                                    serial["execution_ms"]["p50"]),
            "serial_extra_ms_p50": round(serial_jobs["execution_ms"]["p50"]
                                         - serial["execution_ms"]["p50"], 1)}
    return compared


def _spawn(args: list[str], bootstrap: str, prefix: str,
           partitions: int) -> subprocess.Popen[str]:
    # not this shell's FLOWMONKEY_* (a metrics port two workers would share)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update(FLOWMONKEY_KAFKA_BOOTSTRAP=bootstrap, FLOWMONKEY_TOPIC_PREFIX=prefix,
               FLOWMONKEY_PARTITIONS=str(partitions))
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("flowmonkey")), *args, "--app", __file__,
         "--progress-every", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


async def _ready(proc: subprocess.Popen[str], wanted: str, what: str) -> None:
    """Wait for ``wanted`` in ``proc``'s progress lines, then keep draining them."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(proc.stdout.readline)
        if not line:
            break
        if wanted in line:
            # keep draining its output so the pipe never fills
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return
    proc.kill()
    raise RuntimeError(f"{what} did not get ready in time")


async def _start_processes(args: argparse.Namespace, bootstrap: str,
                           prefix: str) -> list[tuple[str, subprocess.Popen[str]]]:
    started: list[tuple[str, subprocess.Popen[str]]] = []
    if args.split:
        proc = _spawn(["processor", "--group", prefix, "--step-timeout-ms", "60000"],
                      bootstrap, prefix, args.partitions)
        started.append(("processors", proc))
        owns = "partitions " + ",".join(str(p) for p in range(args.partitions)) + ":"
        await _ready(proc, owns, "the processor process")
    for i in range(args.workers):
        proc = _spawn(["worker", "--worker-id", f"bench-w{i}", "--grace", "1",
                       "--concurrency", str(args.worker_concurrency)],
                      bootstrap, prefix, args.partitions)
        started.append((f"worker{i}", proc))
        await _ready(proc, "following", f"worker {i}")
    return started


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'drop schema if exists "{schema}" cascade')
    finally:
        await conn.close()


async def run(args: argparse.Namespace, bootstrap: str, dsn: str,
              service_pids: dict[str, int | None]) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    schema = f"bench_{run_id}"
    observer = Observer()
    prefix = f"bench-{run_id}"
    engine = Engine(
        flows=flows, handlers=handlers, dispatcher=observer.dispatcher(), workers=0,
        options=EngineOptions(timeout_ms=60_000),
        log=KafkaLog(bootstrap, topic_prefix=prefix, partitions=args.partitions,
                     exactly_once=True, client_id=prefix),
        projection=PostgresProjection(dsn, schema=schema),
        processor_group=prefix, run_processors=not args.split)
    processes: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        async with engine:
            if not args.split:
                assert engine.group_processors is not None
                await engine.group_processors.wait_assigned(60)
            processes = await _start_processes(args, bootstrap, prefix)
            if args.tune_gc:
                tune_gc()
            if args.warmup:
                print(f"warming up: {args.warmup} executions of each flow …", file=sys.stderr)
                for flow_id in (JOB_FLOW, STATELESS_FLOW):
                    await closed_loop(engine, observer, flow_id, args.warmup,
                                      min(args.warmup, args.concurrency))
            meter = CpuMeter({"engine": os.getpid(),
                              **{name: proc.pid for name, proc in processes},
                              **service_pids})
            results: dict[str, Any] = {}
            phases = [("jobs", JOB_FLOW, args.executions, args.concurrency),
                      ("stateless", STATELESS_FLOW, args.executions, args.concurrency)]
            if args.serial:
                phases += [("jobs_serial", JOB_FLOW, args.serial, 1),
                           ("stateless_serial", STATELESS_FLOW, args.serial, 1)]
            for phase, flow_id, total, concurrency in phases:
                print(f"{phase}: {total} executions at concurrency {concurrency} …",
                      file=sys.stderr)
                # one at a time, the idle processes' polling would be most of the CPU
                results[phase] = await closed_loop(engine, observer, flow_id, total,
                                                   concurrency,
                                                   meter if concurrency > 1 else None)
    finally:
        for _, proc in processes:
            proc.terminate()
        for _, proc in processes:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await _drop_schema(dsn, schema)
    return {"benchmark": "jobs_throughput", "flow_steps": 1, "exactly_once": True,
            "partitions": args.partitions, "workers": args.workers,
            "worker_concurrency": args.worker_concurrency,
            "layout": "split" if args.split else "one process", "projection": "postgres",
            "tuned_gc": args.tune_gc, "results": results,
            "job_vs_stateless": _compare(results),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=2000,
                        help="executions per phase (default 2000)")
    parser.add_argument("--concurrency", type=int, default=200,
                        help="executions in flight (default 200)")
    parser.add_argument("--workers", type=int, default=2,
                        help="`flowmonkey worker` processes (default 2)")
    parser.add_argument("--worker-concurrency", type=int, default=100,
                        help="jobs each worker runs at once (default 100)")
    parser.add_argument("--serial", type=int, default=100,
                        help="then run this many executions of each flow one at a time, "
                             "for the latencies without queueing (default 100; 0: skip)")
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    parser.add_argument("--warmup", type=int, default=200,
                        help="executions of each flow run before measuring (default 200)")
    parser.add_argument("--tune-gc", action="store_true",
                        help="tune this process's garbage collector, as the processor, "
                             "projector and worker commands do by default")
    parser.add_argument("--split", action="store_true",
                        help="run the processors in a `flowmonkey processor` process")
    args = parser.parse_args()
    for name in ("executions", "concurrency", "workers", "worker_concurrency", "partitions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.serial < 0:
        parser.error("--warmup and --serial must be 0 or more")
    services = services_from_env()
    try:
        bootstrap, dsn = services.kafka_bootstrap(), services.postgres_dsn()
        pids = {"broker": services.kafka.process.pid
                if services.kafka and services.kafka.process
                else listener_pid(int(bootstrap.split(",")[0].rsplit(":", 1)[1])),
                "postgres": postmaster_pid(services.postgres.data_dir)
                if services.postgres else listener_pid(urlsplit(dsn).port or 5432)}
        print(json.dumps(asyncio.run(run(args, bootstrap, dsn, pids)), indent=2))
    finally:
        services.close()


if __name__ == "__main__":
    main()
