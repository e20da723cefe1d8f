"""Throughput and latency of a 5-step flow with trivial handlers on the embedded log.

Runs each configuration (memory / durable log × concurrency 1, 100, 10,000) in its own
subprocess, so peak RSS is per configuration, and prints one JSON document:
steps/s, p50/p99 step latency (ms) and peak RSS (MiB) per configuration.

Step latency is the wall time between an execution's consecutive ``step.completed``
events as observed by an event listener (the first step counts from the create
call): end to end through the log, the processor, the handler and the projection.

    python bench/embedded_throughput.py                 # all configurations
    python bench/embedded_throughput.py --log memory --concurrency 10000
    python bench/embedded_throughput.py --gc tuned      # with runtime.gc_tuning.tune_gc()
    python bench/embedded_throughput.py --finish wait   # callers block in Engine.wait

``--gc default`` leaves Python's garbage collector as it is (what an application gets
without tuning); ``--gc tuned`` calls :func:`flowmonkey.runtime.gc_tuning.tune_gc`
first, and ``--gc both`` runs every configuration each way. ``cpu_us_per_step`` is the
process's CPU time per step, steadier than wall time on a shared machine.
``--finish listener`` (default) learns that an execution ended from an event listener;
``--finish wait`` has each caller block in ``Engine.wait`` instead, as an application
would (``wait_reads`` counts the executions ``wait`` read on the way).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from flowmonkey import Engine, EngineOptions, Event, EventDispatcher, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import EmbeddedLog
from flowmonkey.model.result import StepResult
from flowmonkey.runtime.gc_tuning import tune_gc

STEPS = 5
TOTALS = {1: 300, 100: 3_000, 10_000: 10_000}


@handler("bench-noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"n": 1})


def bench_flow() -> dict[str, Any]:
    steps = {}
    for i in range(STEPS):
        steps[f"s{i}"] = {
            "id": f"s{i}", "type": "bench-noop", "outputKey": f"s{i}",
            "transitions": {"onSuccess": f"s{i + 1}" if i + 1 < STEPS else None},
        }
    return {"id": "bench", "version": "1", "initialStepId": "s0", "steps": steps}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_one(log_kind: str, concurrency: int, total: int,
                  gc_mode: str = "default", finish: str = "listener") -> dict[str, Any]:
    latencies: list[float] = []
    last_seen: dict[str, float] = {}
    done: dict[str, asyncio.Future[None]] = {}
    completed_steps = 0

    def on_step_completed(event: Event) -> None:
        nonlocal completed_steps
        now = time.perf_counter()
        previous = last_seen.get(event.execution_id)
        if previous is not None:
            latencies.append((now - previous) * 1000)
        last_seen[event.execution_id] = now
        completed_steps += 1

    def on_finished(event: Event) -> None:
        future = done.get(event.execution_id)
        if future is not None and not future.done():
            future.set_result(None)

    dispatcher = EventDispatcher(mode="sync")
    dispatcher.on("step.completed", on_step_completed)
    dispatcher.on("execution.completed", on_finished)
    dispatcher.on("execution.failed", on_finished)
    tmp = tempfile.TemporaryDirectory() if log_kind == "durable" else None
    log = EmbeddedLog(path=tmp.name if tmp else None, partitions=4)
    engine = Engine(flows=[bench_flow()], handlers=[noop], log=log, dispatcher=dispatcher,
                    options=EngineOptions(timeout_ms=60_000))
    loop = asyncio.get_running_loop()
    remaining = total
    reads = 0
    projection_get = engine.projection.get

    async def counted_get(execution_id: str, *, tenant_id: str | None = None) -> Any:
        nonlocal reads
        reads += 1
        return await projection_get(execution_id, tenant_id=tenant_id)

    async def one() -> None:
        # the id is chosen here so the completion has a future to resolve even when
        # all the steps run before create's answer resumes this task: a completion
        # seen first was dropped, and that worker waited forever (a durable run at
        # 2,000 in flight on a busy machine hung, idle)
        execution_id = str(uuid.uuid4())
        last_seen[execution_id] = time.perf_counter()
        if finish == "wait":
            await engine.create("bench", {}, execution_id=execution_id)
            await engine.wait(execution_id, timeout_s=600)
            last_seen.pop(execution_id, None)
            return
        future = done[execution_id] = loop.create_future()
        await engine.create("bench", {}, execution_id=execution_id)
        await future
        done.pop(execution_id, None)
        last_seen.pop(execution_id, None)

    async def worker() -> None:
        # ``concurrency`` workers, each running one execution after another: the same
        # load as a semaphore around ``total`` tasks, without asyncio.Semaphore's scan
        # of its waiters on every release (it cost ~4% of the CPU at 10,000 waiters).
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    async with engine:
        if finish == "wait":
            engine.projection.get = counted_get  # type: ignore[method-assign]
        if gc_mode == "tuned":
            tune_gc()
        began = time.perf_counter()
        cpu_began = time.process_time()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
    if tmp is not None:
        tmp.cleanup()
    steps = total * STEPS
    return {
        "log": log_kind,
        "gc": gc_mode,
        "finish": finish,
        "concurrency": concurrency,
        "executions": total,
        "steps": steps,
        "seconds": round(elapsed, 3),
        "steps_per_s": round(steps / elapsed, 1),
        "cpu_us_per_step": round(cpu / steps * 1e6, 1),
        "step_latency_ms_p50": round(percentile(latencies, 0.50), 3),
        "step_latency_ms_p99": round(percentile(latencies, 0.99), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **({"wait_reads": reads} if finish == "wait" else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", choices=["memory", "durable"])
    parser.add_argument("--concurrency", type=int, choices=sorted(TOTALS))
    parser.add_argument("--total", type=int, help="executions to run (default per level)")
    parser.add_argument("--gc", choices=["default", "tuned", "both"], default="default",
                        help="garbage collector settings (default: Python's own)")
    parser.add_argument("--finish", choices=["listener", "wait"], default="listener",
                        help="how callers learn an execution ended (default: listener)")
    args = parser.parse_args()
    if args.log and args.concurrency and args.gc != "both":
        total = args.total or TOTALS[args.concurrency]
        print(json.dumps(asyncio.run(run_one(args.log, args.concurrency, total, args.gc,
                                             args.finish))))
        return
    results = []
    for gc_mode in ["default", "tuned"] if args.gc == "both" else [args.gc]:
        for log_kind in [args.log] if args.log else ["memory", "durable"]:
            for level in [args.concurrency] if args.concurrency else sorted(TOTALS):
                print(f"running {log_kind} log at concurrency {level}, gc {gc_mode} …",
                      file=sys.stderr)
                command = [sys.executable, __file__, "--log", log_kind, "--concurrency",
                           str(level), "--gc", gc_mode, "--finish", args.finish]
                if args.total:
                    command += ["--total", str(args.total)]
                out = subprocess.run(command, check=True, capture_output=True, text=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "embedded_throughput", "flow_steps": STEPS,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
