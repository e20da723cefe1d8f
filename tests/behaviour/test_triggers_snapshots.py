"""A schedule's state survives a processor snapshot and a restart: the restarted
engine recovers the trigger from the snapshot plus the events after it (the same
state a full replay gives), re-arms its next tick, and every tick fires exactly once
across the restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_event
from flowmonkey.kernel.triggers import TRIGGER_TICK
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.trigger import Trigger
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.runner import StepRunner
from flowmonkey.processors.snapshots_memory import MemorySnapshotStore
from tests.behaviour.flows import flow, step

EVENTS = "flowmonkey.events"
MINUTE = 60_000
START = 1_714_521_630_000  # 2024-05-01T00:00:30Z

MINUTELY = Trigger.model_validate({"id": "minutely", "kind": "schedule", "flowId": "report",
                                   "schedule": {"cron": "* * * * *"}})


@handler("note")
async def note(p: HandlerParams) -> StepResult:
    return Result.success()


def engine(path: Path, store: MemorySnapshotStore, clock: SimulatedClock) -> Engine:
    return Engine(flows=[flow("report", step("a", "note"))], handlers=[note],
                  log=EmbeddedLog(path, partitions=1, fsync=False), snapshots=store,
                  snapshot_every=20, clock=clock, triggers=[MINUTELY])


async def settle(e: Engine) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    quiet = 0
    while quiet < 3:
        quiet = quiet + 1 if await e.settled() else 0
        assert loop.time() < deadline, "the engine did not settle"
        await asyncio.sleep(0.001)


async def run_for(e: Engine, clock: SimulatedClock, ms: int) -> None:
    await settle(e)
    target = clock.now_ms() + ms
    while (due := clock.next_due()) is not None and due <= target:
        clock.advance_to(due)
        await settle(e)
    clock.advance_to(target)
    await settle(e)


async def ticks_fired(e: Engine) -> list[int]:
    records = await e.log.read(EVENTS, 0, 0, 100_000)
    events = [decode_event(r.value) for r in records]
    return [ev.data["tick"] for ev in events if ev.type == n.TRIGGER_FIRED]


async def test_a_schedule_fires_once_per_tick_across_a_snapshot_and_a_restart(
        tmp_path: Path) -> None:
    store = MemorySnapshotStore()
    clock = SimulatedClock(START)
    async with engine(tmp_path, store, clock) as first:
        await run_for(first, clock, 10 * MINUTE)
        deadline = asyncio.get_running_loop().time() + 30
        while await store.load(EVENTS, 0) is None:
            assert asyncio.get_running_loop().time() < deadline, "no snapshot was saved"
            await asyncio.sleep(0.01)
        await run_for(first, clock, 2 * MINUTE)  # a tail of events past the snapshot
        before = first.processors[0].state.triggers["trigger:minutely"]
    async with engine(tmp_path, store, clock) as second:
        [processor] = second.processors
        end = await second.log.end_offset(EVENTS, 0)
        assert 0 < processor.events_replayed < end  # recovered from the snapshot
        recovered = processor.state.triggers["trigger:minutely"]
        assert recovered == before
        # the same state as a replay of the whole partition
        replayed = PartitionProcessor(0, 1, second.log, second.topics, second.env,
                                      second.handlers, StepRunner(30_000, clock.now_ms),
                                      SimulatedClock(START), "replay-only")
        await replayed.recover()
        await replayed.stop()
        assert replayed.state.triggers == processor.state.triggers
        # its next tick is armed again, from the state alone
        timer = processor.timers["trigger:minutely"]
        assert (timer.due, timer.kind) == (recovered.next_fire_at, TRIGGER_TICK)
        await run_for(second, clock, 10 * MINUTE)
        ticks = await ticks_fired(second)
    assert len(ticks) == len(set(ticks)) == 22
    assert ticks == [START + 30_000 + i * MINUTE for i in range(22)]
