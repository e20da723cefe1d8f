"""FlowMonkey beside DBOS in one run: the 5-step no-op flow's steps/s and the ratio.

Runs the same 5-step flow of no-op steps, ``--in-flight`` executions at a time
(default 2,000), on each setup, one subprocess per setup (so one setup's memory and
threads do not slow the next):

* ``dbos`` (with ``--with-dbos``): a DBOS workflow of 5 async steps on the same local
  PostgreSQL the Kafka setups use (its system tables in a schema of their own, dropped
  after the run). DBOS is not a FlowMonkey dependency: ``pip install dbos`` into this
  environment to run it;
* ``memory`` / ``durable``: the embedded memory and durable segment log
  (``bench/embedded_throughput.py``);
* ``kafka``: Kafka (exactly once) + the PostgreSQL projection in one process, and
  ``split``: the processors in a ``flowmonkey processor`` process of their own
  (``bench/kafka_throughput.py``; they also report p50/p99 step latency and projection
  lag at half the measured load).

FlowMonkey's setups run with the tuned garbage collector (``runtime.gc_tuning``), as
``flowmonkey processor`` and ``projector`` do by default.

It prints one JSON document: per setup its steps/s, ``x_dbos`` (its steps/s over
DBOS's, measured in the same run on the same machine, so the ratio compares across
machines), ``x_dbos_cpu`` (the CPU per step of all the processes involved, the
broker's and PostgreSQL's included, DBOS's over this setup's: steadier than wall time
when other work shares the machine), the goal of issue 15 for that setup (on steps/s,
as the issue states them) and whether the run met it.

Services: as ``bench/kafka_throughput.py`` (``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP`` /
``FLOWMONKEY_TEST_POSTGRES_DSN``, or the test services start local ones).

    python bench/compare.py --with-dbos
    python bench/compare.py --setups memory,durable --executions 4000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).parent))
import embedded_throughput
import kafka_throughput
from cpu_meter import CpuMeter, listener_pid

from flowmonkey.testing.services import services_from_env
from flowmonkey.testing.services_common import (
    ENV_KAFKA_BOOTSTRAP,
    ENV_POSTGRES_DSN,
)

STEPS = embedded_throughput.STEPS
SETUPS = ["dbos", "memory", "durable", "kafka", "split"]
DBOS_MISSING = ("DBOS is not installed in this environment; it is not a FlowMonkey "
                "dependency: `pip install dbos` (into this virtual environment) to "
                "compare with it")

# issue 15's goals per setup, figure: target; x_dbos and steps_per_s are floors, the
# others ceilings
GOALS: dict[str, dict[str, float]] = {
    "memory": {"x_dbos": 50},
    "durable": {"x_dbos": 30},
    "kafka": {"x_dbos": 20},
    # "step p99" as the README's Kafka table gives it: the processor's pace
    "split": {"steps_per_s": 4000, "half_load_processor_step_p99_ms": 20,
              "half_load_projection_lag_ms_max": 1000},
}


async def run_dbos(dsn: str, in_flight: int, total: int) -> dict[str, Any]:
    """DBOS's closed loop: ``in_flight`` workers, each running workflows one after
    another until ``total`` ran. Each workflow is 5 steps returning what ours do. Its
    CPU per step counts PostgreSQL's too (DBOS writes every step there)."""
    try:
        from dbos import DBOS  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise SystemExit(DBOS_MISSING) from None
    schema = f"dbos_bench_{uuid.uuid4().hex[:8]}"
    DBOS(config={"name": "flowmonkey-bench", "system_database_url": dsn,
                 "dbos_system_schema": schema, "log_level": "WARNING"})

    # (DBOS is typed when installed, Any when not: either way its decorators pass)
    @DBOS.step()  # type: ignore[untyped-decorator, unused-ignore]
    async def noop_step(i: int) -> dict[str, int]:
        return {"n": 1}

    @DBOS.workflow()  # type: ignore[untyped-decorator, unused-ignore]
    async def bench_workflow() -> None:
        for i in range(STEPS):
            await noop_step(i)

    DBOS.launch()
    try:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await bench_workflow()

        meter = CpuMeter({"dbos": os.getpid(),
                          "postgres": listener_pid(urlsplit(dsn).port or 5432)})
        cpu_before = meter.read()
        began, cpu_began = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(min(in_flight, total))))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
        steps = total * STEPS
        cpu_figures = meter.per_step(cpu_before, steps)
    finally:
        DBOS.destroy()
        await kafka_throughput._drop_schema(dsn, schema)
    return {"executions": total, "steps": steps, "seconds": round(elapsed, 3),
            "steps_per_s": round(steps / elapsed, 1),
            "cpu_us_per_step": round(cpu / steps * 1e6), **cpu_figures}


def run_kafka(split: bool, in_flight: int, total: int, warmup: int,
              seconds: float) -> dict[str, Any]:
    """``bench/kafka_throughput.py``'s run, one process or split; its two phases
    folded into one line."""
    services = services_from_env()
    try:
        bootstrap, dsn = services.kafka_bootstrap(), services.postgres_dsn()
        args = argparse.Namespace(
            executions=total, concurrency=in_flight, partitions=kafka_throughput.PARTITIONS,
            warmup=warmup, rate=None, tune_gc=True, split=split, memory=False,
            seconds=seconds)
        out = asyncio.run(kafka_throughput.run(
            args, bootstrap, dsn, kafka_throughput.service_pids(services, bootstrap, dsn)))
    finally:
        services.close()
    peak, half = out["results"]
    return {**{k: v for k, v in peak.items() if k not in ("phase", "concurrency")},
            "half_load_steps_per_s": half["steps_per_s"],
            "half_load_step_p99_ms": half["step_latency_ms_p99"],
            "half_load_processor_step_p99_ms": half["processor_step_ms_p99"],
            "half_load_projection_lag_ms_max": half["projection_lag_ms_max"],
            "peak_rss_mib": out["peak_rss_mib"]}


def run_setup(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One setup, in this process."""
    if name == "dbos":
        dsn = services_from_env().postgres_dsn()
        return asyncio.run(run_dbos(dsn, args.in_flight, args.dbos_executions))
    if name in ("memory", "durable"):
        out = asyncio.run(embedded_throughput.run_one(name, args.in_flight, args.executions,
                                                      "tuned"))
        return {k: v for k, v in out.items() if k not in ("log", "gc", "concurrency", "finish")}
    return run_kafka(name == "split", args.in_flight, args.executions, args.warmup,
                     args.seconds)


def judge(name: str, line: dict[str, Any]) -> dict[str, Any]:
    """The goal for ``name`` and whether ``line`` meets it (``None``: not measured)."""
    goal = GOALS.get(name)
    if goal is None:
        return {}
    verdicts: list[bool | None] = []
    for key, target in goal.items():
        value = line.get(key)
        if value is None:
            verdicts.append(None)  # e.g. no DBOS figure to compare with
        else:
            verdicts.append(value >= target if key in ("x_dbos", "steps_per_s")
                            else value <= target)
    met = False if False in verdicts else None if None in verdicts else True
    text = {"x_dbos": "≥ {:g}× DBOS", "steps_per_s": "≥ {:g} steps/s",
            "half_load_processor_step_p99_ms": "step p99 ≤ {:g} ms at half load",
            "half_load_projection_lag_ms_max": "projection lag ≤ {:g} ms"}
    return {"goal": "; ".join(text[k].format(v) for k, v in goal.items()), "goal_met": met}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with-dbos", action="store_true",
                        help="also run DBOS (needs `pip install dbos`) and print ratios")
    parser.add_argument("--setups", default="memory,durable,kafka,split",
                        help="FlowMonkey setups to run, comma-separated "
                             "(default memory,durable,kafka,split)")
    parser.add_argument("--in-flight", type=int, default=2000,
                        help="executions in flight (default 2000)")
    parser.add_argument("--executions", type=int, default=6000,
                        help="executions per FlowMonkey setup (default 6000)")
    parser.add_argument("--dbos-executions", type=int, default=2000,
                        help="executions on DBOS (default 2000; it is the slow one)")
    parser.add_argument("--warmup", type=int, default=500,
                        help="executions run before measuring on Kafka (default 500)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="Kafka setups' half-load phase, seconds (default 5)")
    parser.add_argument("--run-setup", choices=SETUPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_setup:
        print(json.dumps(run_setup(args.run_setup, args)))
        return
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = sorted(set(setups) - set(SETUPS[1:]))
    if unknown:
        parser.error(f"unknown setups {unknown}; known: {', '.join(SETUPS[1:])}")
    if args.with_dbos:
        if importlib.util.find_spec("dbos") is None:
            parser.error(DBOS_MISSING)
        setups = ["dbos", *setups]
    services = services_from_env()
    try:
        env = dict(os.environ)
        if any(s in ("dbos", "kafka", "split") for s in setups):
            env[ENV_POSTGRES_DSN] = services.postgres_dsn()
        if any(s in ("kafka", "split") for s in setups):
            env[ENV_KAFKA_BOOTSTRAP] = services.kafka_bootstrap()
        results = {}
        for name in setups:
            print(f"running {name} …", file=sys.stderr)
            command = [sys.executable, __file__, "--run-setup", name,
                       *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                         if k in ("in_flight", "executions", "dbos_executions", "warmup",
                                  "seconds"))]
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        services.close()
    baseline = results.get("dbos", {})
    for name, line in results.items():
        if name != "dbos":
            line["x_dbos"] = round(line["steps_per_s"] / baseline["steps_per_s"], 1) \
                if baseline else None
            # CPU per step over all the processes, DBOS's over this setup's: steadier
            # than the steps/s ratio when other work shares the machine
            total = line.get("cpu_us_per_step_total", line["cpu_us_per_step"])
            line["x_dbos_cpu"] = round(baseline["cpu_us_per_step_total"] / total, 1) \
                if baseline.get("cpu_us_per_step_total") else None
        line.update(judge(name, line))
    print(json.dumps({"benchmark": "compare", "flow_steps": STEPS, "in_flight": args.in_flight,
                      "gc": "tuned", "cpu_count": os.cpu_count(), "results": results}, indent=2,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
