"""Memory of executions parked on a signal wait with a deadline, per setup.

Issue 15's goal is "100,000 waiting executions ≤ 200 MB in a processor process". Each
setup runs in a fresh child process (so one setup's heap does not inflate the next)
and reports the RSS the process grew by while the executions were parked, per
execution:

- ``embedded``: one engine doing everything on the in-memory log (the log holds every
  event: it *is* the store), with the in-process projection and ``create`` waiters, as
  ``flowmonkey dev`` runs. Executions are started with ``engine.create``.
- ``processor``: processors only (``run_projector=False``, as ``flowmonkey processor``
  runs them), over the durable segment log (``EmbeddedLog(path=…)``), which keeps
  its records on disk. The start commands are published on the commands topic as an
  API process would, and the run waits until every execution is parked.
- ``recovered``: a processor-only process started over the same data directory: what
  a processor holds for the parked executions after a restart or a rebalance (the
  state rebuilt from the events, every deadline timer re-armed).

The flow's one step waits for a signal with a 24 h deadline, so every execution has a
resume token and a timer. ``--breakdown`` also traces allocations (tracemalloc, which
makes the run slower and its RSS larger) and lists the top allocation sites by the
memory they still hold once the executions are parked.

    python bench/waiting_memory.py                        # 100,000 executions
    python bench/waiting_memory.py --executions 20000 --setups processor,recovered
    python bench/waiting_memory.py --breakdown --setups recovered
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowmonkey import Engine, EngineOptions
from flowmonkey.events import names as n
from flowmonkey.log import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.runtime.commands import command_record, start_data, start_route

# the same parked flow, handler and RSS reading as the replay benchmark's
sys.path.insert(0, str(Path(__file__).parent))
from replay_memory import FLOW, _rss_mib, approval

SETUPS = ("embedded", "processor", "recovered")


def _engine(log: EmbeddedLog, *, processors_only: bool) -> Engine:
    return Engine(flows=[FLOW], handlers=[approval], log=log,
                  options=EngineOptions(timeout_ms=3_600_000),
                  run_projector=not processors_only)


def _waiting(engine: Engine) -> int:
    return sum(1 for p in engine.processors for s in p.state.executions.values()
               if s.status == ExecutionStatus.WAITING)


def _parked_at_least(engine: Engine, count: int) -> bool:
    return _waiting(engine) >= count


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def _create_all(engine: Engine, total: int, concurrency: int) -> None:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await engine.create("bench-wait", {"order": remaining})

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _publish_all(engine: Engine, total: int, batch: int) -> None:
    """Start commands on the commands topic, as an API process publishes them (nobody
    in this process waits for their answers)."""
    data = start_data("bench-wait", "1", None, engine.options.pinned(),
                      idempotency_key=None, idempotency_window_ms=None,
                      parent_execution_id=None, metadata=None, timeout=None,
                      allow_unpublished=False)
    for first in range(0, total, batch):
        records = []
        for i in range(first, min(total, first + batch)):
            execution_id, key = start_route(None, None, None, "bench-wait", engine.partitions)
            command = engine._command(n.CMD_START, execution_id,
                                      {**data, "context": {"order": i}}, None)
            records.append(command_record(engine.topics.commands, command, key))
        await engine.log.publish(records)
        # keep the backlog bounded, as a rate-limited API would
        await _until(functools.partial(_parked_at_least, engine, first - 4 * batch),
                     "the backlog did not shrink")


def _timer_handles() -> int:
    loop = asyncio.get_running_loop()
    return len(getattr(loop, "_scheduled", ()))


async def _phase(setup: str, total: int, data_dir: str | None, concurrency: int,
                 breakdown: int) -> dict[str, Any]:
    gc.collect()
    if breakdown:
        tracemalloc.start(1)
    baseline = tracemalloc.take_snapshot() if breakdown else None
    before = _rss_mib()
    began = time.perf_counter()
    if setup == "embedded":
        log = EmbeddedLog(partitions=4)
    else:
        assert data_dir is not None
        log = EmbeddedLog(path=data_dir, partitions=4, fsync=False)
    engine = _engine(log, processors_only=setup != "embedded")
    result: dict[str, Any] = {"setup": setup}
    async with engine:
        if setup == "embedded":
            await _create_all(engine, total, concurrency)
        elif setup == "processor":
            await _publish_all(engine, total, 2_000)
        await _until(lambda: _waiting(engine) >= total, "the executions did not park")
        result["seconds"] = round(time.perf_counter() - began, 1)
        gc.collect()
        grown = _rss_mib() - before
        result["waiting"] = _waiting(engine)
        result["timer_handles"] = _timer_handles()
        result["rss_growth_mib"] = round(grown, 1)
        result["bytes_per_execution"] = round(grown * 2**20 / total)
        if breakdown:
            assert baseline is not None
            result["traced_mib"] = round(
                sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(
                    baseline, "filename")) / 2**20, 1)
            result["top_sites"] = _top_sites(baseline, breakdown, total)
    return result


def _top_sites(baseline: tracemalloc.Snapshot, count: int, total: int) -> list[dict[str, Any]]:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    sites = []
    for stat in snapshot.compare_to(baseline, "lineno")[:count]:
        frame = stat.traceback[0]
        sites.append({"site": f"{frame.filename.removeprefix(root)}:{frame.lineno}",
                      "mib": round(stat.size_diff / 2**20, 2),
                      "bytes_per_execution": round(stat.size_diff / total),
                      "blocks": stat.count_diff})
    return sites


def _child(args: argparse.Namespace) -> None:
    result = asyncio.run(_phase(args.phase, args.executions, args.data_dir, args.concurrency,
                                args.breakdown))
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def _run_child(setup: str, args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", setup, "--executions",
               str(args.executions), "--concurrency", str(args.concurrency),
               "--data-dir", data_dir, "--breakdown", str(args.breakdown)]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[1:])})
    if done.returncode != 0:
        raise SystemExit(f"{setup} failed:\n{done.stderr[-3000:]}")
    parsed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000,
                        help="executions left waiting on a signal")
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help=f"comma-separated, of {', '.join(SETUPS)} (recovered needs "
                             "processor first)")
    parser.add_argument("--concurrency", type=int, default=200,
                        help="creates in flight (embedded)")
    parser.add_argument("--breakdown", nargs="?", type=int, const=15, default=0,
                        metavar="N", help="trace allocations and list the top N sites "
                                          "(default 15)")
    parser.add_argument("--phase", choices=SETUPS, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _child(args)
        return
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = [s for s in setups if s not in SETUPS]
    if unknown:
        parser.error(f"unknown setups: {', '.join(unknown)}")
    if "recovered" in setups and "processor" not in setups:
        parser.error("recovered reopens the data directory processor fills: give both")
    with tempfile.TemporaryDirectory(prefix="fm-waiting-") as tmp:
        data_dir = str(Path(tmp) / f"log-{uuid.uuid4().hex[:8]}")
        results = [_run_child(s, args, data_dir) for s in setups]
    print(json.dumps({"benchmark": "waiting_memory", "executions": args.executions,
                      "setups": results}, indent=2))


if __name__ == "__main__":
    main()
