"""A schedule fires every tick exactly once with real processes on a real Kafka broker,
while the processor that owns it is killed.

Two `flowmonkey processor` processes share the commands partitions; their --app
registers ``every-second`` (``*/1 * * * * *``, 6 fields with seconds, catch-up
``all``). About 15 s after its first tick, the processor owning the trigger's partition
is killed with SIGKILL and started again; the schedule runs for a minute in all. Then,
over the ticks from the first fired to the last fired:

* every tick of the cron fired (no gap: catch-up ``all`` lets none go);
* none fired twice (one ``trigger.fired`` per tick) and each tick started one
  execution, created once;
* the figures (ticks expected, fired, duplicated, caught up late) are printed and
  kept in /tmp/flowmonkey-trigger-figures.json.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.partitioner import partition_for
from flowmonkey.log.topics import Topics
from flowmonkey.model.trigger import entity_id
from tests.recovery.crash_support import FLOWMONKEY, Proc
from tests.recovery.trigger_support import EventTail, owns, record_figures

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = Path(__file__).with_name("trigger_app.py")
PARTITIONS = 4
TRIGGER = "every-second"
PERIOD_MS = 1000  # the cron's period: a tick every second
BEFORE_KILL_S = 15
WINDOW_S = 60
LATE_MS = 2 * PERIOD_MS  # a tick fired later than this after its time was caught up


async def _until(tail: EventTail, check: Callable[[], object], what: str, timeout_s: float,
                 procs: list[Proc]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        await tail.poll()
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" +
                                 "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs))
        await asyncio.sleep(0.5)


async def test_a_schedule_fires_each_tick_once_through_a_killed_processor(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    prefix = kafka_prefix.rstrip("-")
    topics = Topics(prefix)
    env = {**os.environ, "FLOWMONKEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "FLOWMONKEY_TOPIC_PREFIX": prefix, "FLOWMONKEY_PARTITIONS": str(PARTITIONS),
           "TRIGGER_CRASH_SCHEDULE": "1"}
    env.pop("FLOWMONKEY_POSTGRES_DSN", None)
    args = [FLOWMONKEY, "processor", "--app", str(APP), "--group", f"{prefix}-processors",
            "--progress-every", "1"]
    entity = entity_id(TRIGGER)
    partition = partition_for(entity.encode(), PARTITIONS)
    procs: list[Proc] = []

    def fired_events() -> list[Event]:
        return [e for e in tail.events
                if e.execution_id == entity and e.type == n.TRIGGER_FIRED]

    async with KafkaLog(kafka_bootstrap, topic_prefix=prefix,
                        client_id="trigger-crash-reader") as log:
        await log.create_topics(topics.specs(PARTITIONS))
        tail = EventTail(log, topics.events, PARTITIONS)
        try:
            # given two processors whose app registers a schedule firing every second
            procs += [Proc("processor-1", args, env), Proc("processor-2", args, env)]
            for proc in procs:
                proc.wait_for("Ctrl-C to stop", 90)
            await _until(tail, lambda: fired_events(), "the first tick", 180, procs)
            first_seen = time.monotonic()
            # when, after a while, the processor owning the trigger is killed and restarted
            await _until(tail, lambda: time.monotonic() - first_seen > BEFORE_KILL_S,
                         f"{BEFORE_KILL_S}s of ticks", BEFORE_KILL_S + 10, procs)
            await _until(tail, lambda: any(owns(p, partition) for p in procs),
                         "a processor to report owning the trigger's partition", 30, procs)
            owner = next(p for p in procs if owns(p, partition))
            owner.kill()
            killed_at_ms = int(time.time() * 1000)
            procs.append(Proc(f"{owner.name}b", args, env))
            # and the schedule runs on for the rest of the minute
            await _until(tail, lambda: time.monotonic() - first_seen > WINDOW_S,
                         "the end of the minute", WINDOW_S + 10, procs)
            end_ms = int(time.time() * 1000)
            await _until(tail, lambda: _last_tick(fired_events()) >= end_ms - LATE_MS,
                         "the ticks up to now (caught up after the kill)", 60, procs)

            def all_created() -> bool:
                wanted = {e.data["execution_id"] for e in fired_events()}
                return wanted <= {e.execution_id for e in tail.events
                                  if e.type == n.EXECUTION_CREATED}

            await _until(tail, all_created, "the executions of the fired ticks", 30, procs)
            # the schedule goes on firing until the processors stop: the ticks counted
            # are those up to here, whose executions were seen created
            cutoff = _last_tick(fired_events())
        finally:
            for proc in procs:
                proc.stop()
        await tail.poll()
        events = tail.events

    # then every tick between the first and the last fired fired once
    fired = [e for e in events if e.execution_id == entity and e.type == n.TRIGGER_FIRED
             and _tick(e) <= cutoff]
    per_tick = collections.Counter(_tick(e) for e in fired)
    first, last = min(per_tick), max(per_tick)
    expected = list(range(first, last + PERIOD_MS, PERIOD_MS))  # every second of the cron
    missing = sorted(set(expected) - set(per_tick))
    duplicated = sorted(t for t, count in per_tick.items() if count > 1)
    # and each tick started one execution, created once
    execution_of = {e.data["execution_id"]: _tick(e) for e in fired}
    created = collections.Counter(e.execution_id for e in events
                                  if e.type == n.EXECUTION_CREATED
                                  and e.execution_id in execution_of)
    executions_per_tick = collections.Counter(execution_of[x] for x in created)
    late = [e for e in fired if e.timestamp_ms - _tick(e) > LATE_MS]
    record_figures("schedule", {
        "window_s": round((last - first) / 1000 + 1),
        "ticks_expected": len(expected), "ticks_fired": len(per_tick),
        "fired_events": len(fired), "ticks_missing": len(missing),
        "ticks_duplicated": len(duplicated),
        "executions_created": sum(created.values()),
        "ticks_with_more_than_one_execution": sum(1 for c in executions_per_tick.values()
                                                  if c > 1),
        "ticks_caught_up_late": len(late),
        "max_delay_ms": max(e.timestamp_ms - _tick(e) for e in fired),
        "killed_at_ms": killed_at_ms, "catch_up": "all",
    })
    assert not missing, f"ticks never fired: {missing[:10]}"
    assert not duplicated, f"ticks fired twice: {duplicated[:10]}"
    assert sorted(per_tick) == expected
    assert set(created.values()) == {1}, "an execution was created twice"
    assert sorted(executions_per_tick) == expected
    assert set(executions_per_tick.values()) == {1}
    assert late, "the kill delayed no tick: the fault hit nothing"
    assert len(expected) >= WINDOW_S - 5


def _tick(event: Event) -> int:
    """The tick a ``trigger.fired`` of a schedule fired for (ms; its source key)."""
    return int(event.data["source"]["key"])


def _last_tick(fired: list[Event]) -> int:
    return max((_tick(e) for e in fired), default=0)
