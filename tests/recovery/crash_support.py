"""What the crash tests with real processes share: child processes whose output is
collected, polling with a deadline, and reading the events topic and the projection."""

from __future__ import annotations

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

from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_event, encode_command, headers_for
from flowmonkey.events.envelope import Command, Event
from flowmonkey.log import OutRecord
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from flowmonkey.projections.postgres import PostgresProjection
from tests.process_support import stop_process

FLOWMONKEY = str(Path(sys.executable).with_name("flowmonkey"))


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

    def pause(self) -> None:
        """SIGSTOP: the process holds everything (leases included) and does nothing."""
        os.kill(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.popen.pid, signal.SIGCONT)

    def stop(self) -> None:
        stop_process(self.popen)

    def tail(self) -> str:
        """The last lines, without the repeats of unchanged progress lines."""
        lines = [line for i, line in enumerate(self.lines)
                 if i == 0 or line != self.lines[i - 1]]
        return "\n".join(lines[-40:])


def wait_until(check: Callable[[], bool], what: str, timeout_s: float,
                procs: list[Proc]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" +
                                 "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs))
        time.sleep(0.2)


async def log_events(bootstrap: str, topics: Topics, partitions: int) -> list[Event]:
    async with KafkaLog(bootstrap, client_id="crash-test-reader") as log:
        events: list[Event] = []
        for partition in range(partitions):
            offset = 0
            while records := await log.read(topics.events, partition, offset, 5000):
                events.extend(decode_event(r.value) for r in records)
                offset = records[-1].offset + 1
        return events


async def projected(dsn: str, schema: str, ids: list[str]) -> dict[str, dict[str, object]]:
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


async def publish_starts(bootstrap: str, topics: Topics, starts: list[tuple[str, str]]) -> None:
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


async def create_topics(bootstrap: str, topics: Topics, partitions: int) -> None:
    async with KafkaLog(bootstrap, client_id="crash-test-admin") as log:
        await log.create_topics(topics.specs(partitions))


async def status_counts(dsn: str, schema: str) -> dict[str, int]:
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
