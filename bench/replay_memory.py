"""Memory of executions waiting on a signal, and the speed of rebuilding their state.

One embedded engine (memory log, 4 partitions) starts ``--executions`` executions of a
one-step flow whose step waits for a signal, and waits until all are parked. It
reports the process's RSS growth per waiting execution (what the log, the processors'
states, the projection and the waiters hold together), and rebuilds every partition's
state from the log the way recovery does (``processors.replay.replay_events``) and the
way ``replay --verify-all`` folds and compares it (``projections.audit``), after running
``--completed`` 5-step executions too, reporting events per second of the process's
CPU time (steadier than wall time on a shared machine; the reads are from memory, so
the two differ only by what other processes take).

A rebuilt partition must equal the processor's live one (the run fails otherwise):
the benchmark checks replay stays exact while it times it.

    python bench/replay_memory.py                      # 100,000 executions
    python bench/replay_memory.py --executions 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import time
from typing import Any

import orjson

from flowmonkey import Engine, EngineOptions, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.kernel.state import PartitionState
from flowmonkey.kernel.state_codec import state_to_json
from flowmonkey.log import EmbeddedLog
from flowmonkey.log.base import Record
from flowmonkey.log.decoded import new_record
from flowmonkey.model.result import StepResult
from flowmonkey.processors.replay import replay_events
from flowmonkey.projections.audit import VerifyReport, _PartitionFold, compare, expected_columns


@handler("bench-approval")
async def approval(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval", timeout_ms=24 * 3_600_000)


@handler("bench-noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"n": 1})


# executions that ran to the end beside the waiting ones, so the rebuild folds step
# events with outputs too (and retires ended executions), not only parked ones
DONE_FLOW = {
    "id": "bench-done", "version": "1", "initialStepId": "s0",
    "steps": {f"s{i}": {"id": f"s{i}", "type": "bench-noop", "outputKey": f"s{i}",
                        "transitions": {"onSuccess": f"s{i + 1}" if i < 4 else None}}
              for i in range(5)},
}

FLOW = {
    "id": "bench-wait", "version": "1", "initialStepId": "ask",
    "steps": {"ask": {"id": "ask", "type": "bench-approval", "outputKey": "approval",
                      "transitions": {"onResume": None}}},
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def _park(engine: Engine, flow_id: str, total: int, concurrency: int) -> None:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await engine.create(flow_id, {"order": remaining})

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    deadline = time.monotonic() + 600
    while not await engine.settled():
        if time.monotonic() > deadline:
            raise TimeoutError("the executions did not settle within 10 minutes")
        await asyncio.sleep(0.05)


class _RecordsLog:
    """The events topic's records as a reader elsewhere gets them (bytes only, no
    object attached), served from memory so the timing is the replay's, not a log's."""

    def __init__(self, partitions: list[list[Record]]) -> None:
        self.partitions = partitions

    async def read(self, topic: str, partition: int, offset: int,
                   max_records: int) -> list[Record]:
        return self.partitions[partition][offset:offset + max_records]

    async def end_offset(self, topic: str, partition: int) -> int:
        return len(self.partitions[partition])


async def _plain_records(log: EmbeddedLog, topic: str, partitions: int) -> _RecordsLog:
    kept: list[list[Record]] = []
    for p in range(partitions):
        records: list[Record] = []
        while batch := await log.read(topic, p, len(records), 10_000):
            records += [new_record(r.topic, r.partition, r.offset, r.key, r.value,
                                   r.headers, r.timestamp_ms) for r in batch]
        kept.append(records)
    return _RecordsLog(kept)


async def _rebuild(log: Any, topic: str, partitions: int) -> tuple[int, float,
                                                                           list[PartitionState]]:
    states = [PartitionState() for _ in range(partitions)]
    events = 0
    began = time.process_time()
    for p in range(partitions):
        _, read = await replay_events(log, topic, p, states[p], 0)
        events += read
    return events, time.process_time() - began, states


async def _fold(log: Any, topic: str, partitions: int) -> tuple[int, float, float]:
    """Events folded, their CPU seconds, and CPU µs per execution to compare the folded
    states with rows as the projector stores them (equal ones, as in a healthy system;
    built beforehand, so no database round trip is timed)."""
    report = VerifyReport(partitions=partitions)
    began = time.process_time()
    folds = []
    for p in range(partitions):
        fold = _PartitionFold(log, topic, p)
        await fold.read_to(await log.end_offset(topic, p), report)
        folds.append(fold)
    folded = time.process_time() - began
    states = {i: s for fold in folds for i, s in fold.states.items() if s is not None}
    rows = {i: {**expected_columns(s), "state": orjson.loads(orjson.dumps(state_to_json(s)))}
            for i, s in states.items()}
    began = time.process_time()
    for execution_id, state in states.items():
        if compare(execution_id, rows[execution_id], state).kind != "equal":
            raise AssertionError(f"{execution_id}: the fold differs from its own row")
    compared = time.process_time() - began
    return report.events_read, folded, compared / len(states) * 1e6


async def run(total: int, done: int, rounds: int, concurrency: int,
              result: dict[str, Any]) -> None:
    gc.collect()
    log = EmbeddedLog(partitions=4)
    engine = Engine(flows=[FLOW, DONE_FLOW], handlers=[approval, noop], log=log,
                    options=EngineOptions(timeout_ms=3_600_000))
    async with engine:
        gc.collect()
        before = _rss_mib()
        await _park(engine, "bench-wait", total, concurrency)
        gc.collect()
        grown = _rss_mib() - before
        result["rss_growth_mib"] = round(grown, 1)
        result["bytes_per_waiting_execution"] = round(grown * 2**20 / total)
        await _park(engine, "bench-done", done, concurrency)
        sample = await engine.get(next(iter(engine.processors[0].state.executions)))
        if sample is None or sample.status != "waiting":
            raise AssertionError(f"expected a waiting execution, got {sample!r}")
        topic = engine.topics.events
        partitions = engine.partitions
        live = [p.state for p in sorted(engine.processors, key=lambda p: p.partition)]
        records = await _plain_records(log, topic, partitions)
        # what a processor process holds for these executions after a restart: the
        # partitions' states rebuilt from the log (no log, projection or waiters)
        gc.collect()
        before = _rss_mib()
        _, _, rebuilt = await _rebuild(records, topic, partitions)
        gc.collect()
        result["rebuilt_states_mib"] = round(_rss_mib() - before, 1)
        del rebuilt
        rebuild_rates, fold_rates, compare_us = [], [], []
        for _ in range(rounds):
            gc.collect()
            events, seconds, states = await _rebuild(records, topic, partitions)
            if states != live:
                raise AssertionError("a rebuilt partition differs from the live one")
            rebuild_rates.append(events / seconds)
            del states
            gc.collect()
            events, seconds, per_execution = await _fold(records, topic, partitions)
            fold_rates.append(events / seconds)
            compare_us.append(per_execution)
        result["events"] = events
        result["rebuild_events_per_cpu_s"] = _summary(rebuild_rates)
        result["verify_fold_events_per_cpu_s"] = _summary(fold_rates)
        result["verify_compare_cpu_us_per_execution"] = _summary(compare_us)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1)}


async def measure(total: int, done: int, rounds: int, concurrency: int) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "replay_memory", "waiting_executions": total,
                              "completed_executions": done}
    await run(total, done, rounds, concurrency, result)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000,
                        help="executions left waiting on a signal")
    parser.add_argument("--completed", type=int, default=10_000,
                        help="executions of a 5-step flow run to the end (after the "
                        "memory is measured, before the rebuilds)")
    parser.add_argument("--rounds", type=int, default=3, help="rebuilds to time")
    parser.add_argument("--concurrency", type=int, default=200, help="creates in flight")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.executions, args.completed, args.rounds,
                                         args.concurrency)), indent=2))


if __name__ == "__main__":
    main()
