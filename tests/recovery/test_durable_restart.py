"""Kill a FlowMonkey process mid-run with SIGKILL, start it again on the same data
directory: every execution finishes, once, with a gapless history and no step
attempt recorded twice in the log."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowmonkey.events.codec import decode_event
from flowmonkey.events.envelope import Event
from flowmonkey.log import EmbeddedLog

ROOT = Path(__file__).resolve().parents[2]  # the app imports the Kafka test's flows
EXECUTIONS = 200


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.recovery.durable_app", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _read_until(proc: subprocess.Popen[str], wanted: str, deadline_s: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if wanted in line:
            return lines
    raise AssertionError(f"never saw {wanted!r}; output:\n" + "\n".join(lines[-30:]))


async def _events(data_dir: Path) -> list[Event]:
    log = EmbeddedLog(path=data_dir, partitions=4)
    async with log:
        events: list[Event] = []
        for partition in range(4):
            offset = 0
            while records := await log.read("flowmonkey.events", partition, offset, 5000):
                events.extend(decode_event(r.value) for r in records)
                offset = records[-1].offset + 1
        return events


@pytest.mark.slow
def test_a_killed_process_restarts_and_every_execution_finishes_exactly_once(
        tmp_path: Path) -> None:
    # given a process that started executions which wait, retry and run on
    first = _spawn(str(tmp_path), "create", str(EXECUTIONS))
    try:
        _read_until(first, "created", 60)
        _read_until(first, "progress", 10)
        # when it is killed mid-run, without any chance to clean up
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    # and a new process opens the same data directory
    second = _spawn(str(tmp_path), "finish")
    try:
        _read_until(second, "all done", 120)
    finally:
        second.terminate()
        second.wait(10)

    # then every execution completed once, with gapless seqs and no attempt twice
    events = asyncio.run(_events(tmp_path))
    by_execution: dict[str, list[Event]] = collections.defaultdict(list)
    for event in events:
        if event.seq > 0:
            by_execution[event.execution_id].append(event)
    assert len(by_execution) == EXECUTIONS
    for execution_id, history in by_execution.items():
        seqs = [e.seq for e in history]
        assert seqs == list(range(1, len(seqs) + 1)), f"{execution_id}: seq gap or repeat"
        types = [e.type for e in history]
        assert types.count("execution.completed") == 1
        attempts = [(e.data["step_id"], e.data["attempt"]) for e in history
                    if e.type == "step.completed"]
        assert len(attempts) == len(set(attempts)), f"{execution_id}: a step attempt twice"
        assert ("c", 1) in attempts
        assert ("c", 2) in attempts
