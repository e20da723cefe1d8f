"""Jobs survive crashed and frozen workers, with real processes on Kafka and PostgreSQL.

Two `flowmonkey worker` processes run the ``crunch`` jobs (100 items, a checkpoint
every 10) of 500 executions, with a `flowmonkey processor` and a `flowmonkey
projector`. Mid-run one worker is killed with SIGKILL and started again; later the
other is frozen with SIGSTOP for longer than its leases, then thawed with SIGCONT.
Then:

* every job completed exactly once (one ``job.completed``), by the instance holding
  its latest claim, and every execution completed;
* every item was processed, and a job redid at most 10 items per claim it lost
  (its handler resumed from the last checkpoint, not from the start);
* the frozen worker's late writes were refused (``job.superseded``), none of them
  moved an execution;
* the PostgreSQL projection equals the state replayed from the events topic.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
import uuid
from pathlib import Path

import pytest

from flowmonkey.events import names as n
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
from tests.recovery.jobs_app import EVERY, HEARTBEAT_MS, ITEMS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = Path(__file__).with_name("jobs_app.py")
PARTITIONS = 4
JOBS = 500
CONCURRENCY = 8
FROZEN_S = 3 * HEARTBEAT_MS / 1000 + 3  # past a lease (3 heartbeats), with margin


def _ledger(directory: Path) -> list[tuple[str, int, str]]:
    """Every (job, item, instance) the handlers processed, in every process."""
    rows = []
    for path in directory.glob("*.txt"):
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 3:  # (a killed process may leave half a line)
                rows.append((parts[0], int(parts[1]), parts[2]))
    return rows


def _completed(dsn: str, schema: str) -> int:
    return asyncio.run(status_counts(dsn, schema)).get("completed", 0)


def test_jobs_complete_once_through_a_killed_and_a_frozen_worker(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str],
        tmp_path: Path) -> None:
    dsn, schema = pg_schema
    prefix = kafka_prefix.rstrip("-")
    topics = Topics(prefix)
    asyncio.run(create_topics(kafka_bootstrap, topics, PARTITIONS))
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    env = {**os.environ, "FLOWMONKEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "FLOWMONKEY_TOPIC_PREFIX": prefix, "FLOWMONKEY_PARTITIONS": str(PARTITIONS),
           "FLOWMONKEY_POSTGRES_DSN": dsn, "JOBS_CRASH_LEDGER": str(ledger)}
    processor_args = [FLOWMONKEY, "processor", "--app", str(APP), "--group",
                      f"{prefix}-processors", "--schema", schema, "--progress-every", "1"]
    projector_args = [FLOWMONKEY, "projector", "--group", f"{prefix}-projector",
                      "--schema", schema, "--progress-every", "1"]

    def worker_args(worker_id: str) -> list[str]:
        return [FLOWMONKEY, "worker", "--app", str(APP), "--concurrency", str(CONCURRENCY),
                "--worker-id", worker_id, "--progress-every", "1"]

    procs: list[Proc] = []
    try:
        # given a processor, a projector and two workers
        procs += [Proc("processor", processor_args, env), Proc("projector", projector_args, env),
                  Proc("worker-a", worker_args("worker-a"), env),
                  Proc("worker-b", worker_args("worker-b"), env)]
        for proc in procs:
            proc.wait_for("Ctrl-C to stop", 90)
        worker_a, worker_b = procs[2], procs[3]
        # when 500 executions, one job each, are published as commands
        starts = [(str(uuid.uuid4()), "jobs") for _ in range(JOBS)]
        asyncio.run(publish_starts(kafka_bootstrap, topics, starts))

        # and worker a is killed mid-run and started again
        wait_until(lambda: _completed(dsn, schema) >= 50, "the first jobs to finish", 180, procs)
        worker_a.kill()
        procs.append(Proc("worker-a2", worker_args("worker-a2"), env))
        wait_until(lambda: _completed(dsn, schema) >= 200, "progress after the kill", 180, procs)
        # and worker b is frozen past its leases, then thawed
        worker_b.pause()
        frozen_until = time.monotonic() + FROZEN_S
        wait_until(lambda: time.monotonic() > frozen_until, "the frozen worker's leases to run out",
                   FROZEN_S + 5, procs)
        worker_b.resume()
        wait_until(lambda: _completed(dsn, schema) >= JOBS, f"all {JOBS} executions to complete",
                   420, procs)
    finally:
        for proc in procs:
            proc.stop()

    events = asyncio.run(log_events(kafka_bootstrap, topics, PARTITIONS))
    by_execution: dict[str, list[Event]] = collections.defaultdict(list)
    for event in events:
        if event.seq > 0:
            by_execution[event.execution_id].append(event)
    assert by_execution.keys() == {e for e, _ in starts}

    # then every job completed once, by the instance of its latest claim
    claims_of: dict[str, list[str]] = collections.defaultdict(list)
    superseded_by_b = 0
    for execution_id, history in by_execution.items():
        types = [e.type for e in history]
        assert types.count(n.EXECUTION_COMPLETED) == 1, f"{execution_id}: {types}"
        assert types.count(n.JOB_COMPLETED) == 1, f"{execution_id}: {types}"
        completed = next(e for e in history if e.type == n.JOB_COMPLETED)
        claims = [e for e in history if e.type == n.JOB_CLAIMED]
        claims_of[completed.data["job_id"]] = [e.data["instance_id"] for e in claims]
        assert completed.data["instance_id"] == claims[-1].data["instance_id"], execution_id
        b_instances = {e.data["instance_id"] for e in claims if e.data["worker_id"] == "worker-b"}
        superseded_by_b += sum(1 for e in history if e.type == n.JOB_SUPERSEDED
                               and e.data["instance_id"] in b_instances)
    # and the frozen worker's late writes were refused
    assert superseded_by_b > 0, "worker b's late writes were never refused"

    # and every item was processed; a job redid at most 10 items per claim it lost
    processed: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for job_id, item, _instance in _ledger(ledger):
        processed[job_id][item] += 1
    assert processed.keys() == claims_of.keys()
    reclaimed = 0
    for job_id, items in processed.items():
        assert set(items) == set(range(ITEMS)), f"{job_id}: items missing"
        redone = sum(items.values()) - ITEMS
        lost_claims = len(claims_of[job_id]) - 1
        assert redone <= EVERY * lost_claims, (
            f"{job_id}: {redone} items redone with {lost_claims} lost claims")
        reclaimed += lost_claims > 0
    assert reclaimed > 0, "no job was re-claimed: the faults hit nothing"

    # and the projection equals the state replayed from the log
    answers = asyncio.run(projected(dsn, schema, sorted(by_execution)))
    for execution_id, history in by_execution.items():
        state = replay(history)
        assert state is not None
        assert answers[execution_id] == state.to_execution().model_dump(), execution_id
