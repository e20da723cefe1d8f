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
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_event, encode_command, headers_for
from flowmonkey.events.envelope import Command, Event
from flowmonkey.kernel.apply import replay
from flowmonkey.log import OutRecord
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from flowmonkey.projections.postgres import PostgresProjection

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = Path(__file__).with_name("kafka_app.py")
FLOWMONKEY = str(Path(sys.executable).with_name("flowmonkey"))
PARTITIONS = 4
CRASHY, PARENTS = 1500, 500  # 2,000 executions published, plus 500 children
ENDED = ("completed", "failed", "cancelled")


class Proc:
    """A child process whose output is collected by a thread (so its pipe never fills)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.popen = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never printed {text!r}:\n" + self.tail())
            time.sleep(0.05)

    def kill(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def tail(self) -> str:
        """The last lines, without the repeats of unchanged progress lines."""
        lines = [line for i, line in enumerate(self.lines)
                 if i == 0 or line != self.lines[i - 1]]
        return "\n".join(lines[-40:])


async def _publish(bootstrap: str, topics: Topics, starts: list[tuple[str, str]]) -> None:
    async with KafkaLog(bootstrap, client_id="crash-test-client") as log:
        records = []
        for i, (execution_id, flow_id) in enumerate(starts):
            command = Command(type=n.CMD_START, command_id=uuid.uuid4().hex,
                              execution_id=execution_id, timestamp_ms=int(time.time() * 1000),
                              tenant_id=None, data={"flow_id": flow_id, "context": {"i": i}})
            records.append(OutRecord(topics.commands, encode_command(command),
                                     key=execution_id.encode(),
                                     headers=headers_for(command.type, command.version)))
        for chunk in range(0, len(records), 250):
            await log.append(records[chunk:chunk + 250])


async def _create_topics(bootstrap: str, topics: Topics) -> None:
    async with KafkaLog(bootstrap, client_id="crash-test-admin") as log:
        await log.create_topics(topics.specs(PARTITIONS))


async def _status_counts(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("select to_regclass($1)", f'"{schema}".fm_executions')
        if exists is None:
            return {}
        rows = await conn.fetch(
            f'select status, count(*) as n from "{schema}".fm_executions group by status')
        return {row["status"]: row["n"] for row in rows}
    finally:
        await conn.close()


def _wait_until(check: Callable[[], bool], what: str, timeout_s: float,
                procs: list[Proc]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" +
                                 "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs))
        time.sleep(0.2)


async def _log_events(bootstrap: str, topics: Topics) -> list[Event]:
    async with KafkaLog(bootstrap, client_id="crash-test-reader") as log:
        events: list[Event] = []
        for partition in range(PARTITIONS):
            offset = 0
            while records := await log.read(topics.events, partition, offset, 5000):
                events.extend(decode_event(r.value) for r in records)
                offset = records[-1].offset + 1
        return events


async def _projected(dsn: str, schema: str, ids: list[str]) -> dict[str, dict[str, object]]:
    projection = PostgresProjection(dsn, schema)
    await projection.start()
    try:
        out: dict[str, dict[str, object]] = {}
        for execution_id in ids:
            execution = await projection.get(execution_id)
            assert execution is not None, f"{execution_id} missing from the projection"
            out[execution_id] = execution.model_dump()
        return out
    finally:
        await projection.close()


def test_killed_processor_and_projector_lose_nothing_and_do_nothing_twice(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    prefix = kafka_prefix.rstrip("-")
    topics = Topics(prefix)
    asyncio.run(_create_topics(kafka_bootstrap, topics))
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
        asyncio.run(_publish(kafka_bootstrap, topics, starts))

        def ended() -> int:
            counts = asyncio.run(_status_counts(dsn, schema))
            return sum(counts.get(status, 0) for status in ENDED)

        # and, mid-run, one processor and the projector are killed and started again
        _wait_until(lambda: ended() >= 200, "the first executions to end", 120, procs)
        first.kill()
        procs.append(Proc("processor-1b", processor_args, env))
        _wait_until(lambda: ended() >= 600, "progress after the processor crash", 120, procs)
        projector.kill()
        procs.append(Proc("projector-b", projector_args, env))
        total = CRASHY + 2 * PARENTS
        _wait_until(lambda: ended() >= total, f"all {total} executions to end", 300, procs)
    finally:
        for proc in procs:
            proc.stop()

    # then every execution ended once, with a gapless history and no attempt twice
    events = asyncio.run(_log_events(kafka_bootstrap, topics))
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
    projected = asyncio.run(_projected(dsn, schema, sorted(by_execution)))
    for execution_id, history in by_execution.items():
        state = replay(history)
        assert state is not None
        assert projected[execution_id] == state.to_execution().model_dump(), execution_id
