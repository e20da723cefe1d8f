"""Crash recovery with real processes on a real Kafka broker and PostgreSQL server.

Two `flowmonkey processor` processes share the commands partitions in a consumer
group and one `flowmonkey projector` keeps PostgreSQL up to date. 2,000 executions
(timed waits, retries with backoff, sub-flows with waiting children) are published as
commands, the way any Kafka client would. Mid-run one processor is killed with
SIGKILL and started again, and so is the projector. Then:

* every execution (children included) reached its end state, once;
* each execution's seq is gapless and no step attempt appears twice in the log;
* for every execution, the PostgreSQL projection equals the state replayed from the
  events topic.
"""

from __future__ import annotations

import asyncio
import collections
import os
import uuid
from pathlib import Path

import pytest

from flowmonkey.events.envelope import Event
from flowmonkey.kernel.apply import replay
from flowmonkey.log.topics import Topics
from tests.recovery.crash_support import (
    FLOWMONKEY,
    Proc,
    create_topics,
    log_events,
    projected,
    publish_starts,
    status_counts,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = Path(__file__).with_name("kafka_app.py")
PARTITIONS = 4
CRASHY, PARENTS = 1500, 500  # 2,000 executions published, plus 500 children
ENDED = ("completed", "failed", "cancelled")


def test_killed_processor_and_projector_lose_nothing_and_do_nothing_twice(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    prefix = kafka_prefix.rstrip("-")
    topics = Topics(prefix)
    asyncio.run(create_topics(kafka_bootstrap, topics, PARTITIONS))
    env = {**os.environ, "FLOWMONKEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "FLOWMONKEY_TOPIC_PREFIX": prefix, "FLOWMONKEY_PARTITIONS": str(PARTITIONS),
           "FLOWMONKEY_POSTGRES_DSN": dsn}
    processor_args = [FLOWMONKEY, "processor", "--app", str(APP), "--group",
                      f"{prefix}-processors", "--schema", schema, "--progress-every", "1"]
    projector_args = [FLOWMONKEY, "projector", "--group", f"{prefix}-projector",
                      "--schema", schema, "--progress-every", "1"]
    procs: list[Proc] = []
    try:
        # given two processors in one group and a projector
        first = Proc("processor-1", processor_args, env)
        second = Proc("processor-2", processor_args, env)
        projector = Proc("projector", projector_args, env)
        procs += [first, second, projector]
        for proc in procs:
            proc.wait_for("Ctrl-C to stop", 90)
        # when 2,000 executions are published as commands
        starts = [(str(uuid.uuid4()), "crashy") for _ in range(CRASHY)] + \
                 [(str(uuid.uuid4()), "parent") for _ in range(PARENTS)]
        asyncio.run(publish_starts(kafka_bootstrap, topics, starts))

        def ended() -> int:
            counts = asyncio.run(status_counts(dsn, schema))
            return sum(counts.get(status, 0) for status in ENDED)

        # and, mid-run, one processor and the projector are killed and started again
        wait_until(lambda: ended() >= 200, "the first executions to end", 120, procs)
        first.kill()
        procs.append(Proc("processor-1b", processor_args, env))
        wait_until(lambda: ended() >= 600, "progress after the processor crash", 120, procs)
        projector.kill()
        procs.append(Proc("projector-b", projector_args, env))
        total = CRASHY + 2 * PARENTS
        wait_until(lambda: ended() >= total, f"all {total} executions to end", 300, procs)
    finally:
        for proc in procs:
            proc.stop()

    # then every execution ended once, with a gapless history and no attempt twice
    events = asyncio.run(log_events(kafka_bootstrap, topics, PARTITIONS))
    by_execution: dict[str, list[Event]] = collections.defaultdict(list)
    for event in events:
        if event.seq > 0:
            by_execution[event.execution_id].append(event)
    assert len(by_execution) == total
    assert {e for e, _ in starts} <= by_execution.keys()
    for execution_id, history in by_execution.items():
        seqs = [e.seq for e in history]
        assert seqs == list(range(1, len(seqs) + 1)), f"{execution_id}: seq gap or repeat"
        types = [e.type for e in history]
        assert types.count("execution.completed") == 1, f"{execution_id}: {types}"
        started = [e.data["attempt_id"] for e in history if e.type == "step.started"]
        assert len(started) == len(set(started)), f"{execution_id}: a step started twice"
        completed = [(e.data["step_id"], e.data["attempt"]) for e in history
                     if e.type == "step.completed"]
        assert len(completed) == len(set(completed)), f"{execution_id}: an attempt twice"
    # and the projection equals the state replayed from the log, for every execution
    answers = asyncio.run(projected(dsn, schema, sorted(by_execution)))
    for execution_id, history in by_execution.items():
        state = replay(history)
        assert state is not None
        assert answers[execution_id] == state.to_execution().model_dump(), execution_id
