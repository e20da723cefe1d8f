"""CPU time of the processes a benchmark runs on, so it can say what limits it.

On one machine the engine, a ``--split`` processor, the Kafka broker and PostgreSQL
share the cores: throughput is bounded by the CPU they spend together per step. A
:class:`CpuMeter` sums the user + system time of each named process and its live
descendants (PostgreSQL's backends are children of the postmaster) between two
readings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import psutil


def postmaster_pid(data_dir: Path) -> int | None:
    """The PostgreSQL server's pid, from its data directory's ``postmaster.pid``."""
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tree_seconds(pid: int, others: set[int]) -> float:
    """CPU seconds of ``pid`` and its descendants, leaving out the subtrees of the
    ``others`` (the engine starts the processor and, here, the services itself)."""
    total = 0.0
    pending = [pid]
    while pending:
        try:
            process = psutil.Process(pending.pop())
            times = process.cpu_times()
            pending += [c.pid for c in process.children() if c.pid not in others]
        except psutil.Error:
            continue  # ended meanwhile
        total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds per named process tree; ``None`` pids (services not started here,
    so not measurable) are left out."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}

    def read(self) -> dict[str, float]:
        roots = set(self.pids.values())
        return {name: _tree_seconds(pid, roots - {pid}) for name, pid in self.pids.items()}

    def per_step(self, before: Mapping[str, float], steps: int) -> dict[str, object]:
        """µs of CPU per step for each process since ``before``, their total, and the
        steps/s that total allows on this machine's cores."""
        after = self.read()
        used = {name: (after[name] - before.get(name, 0.0)) / steps * 1e6 for name in after}
        total = sum(used.values())
        cores = os.cpu_count() or 1
        return {
            "cpu_us_per_step_by_process": {name: round(us) for name, us in used.items()},
            "cpu_us_per_step_total": round(total),
            "cpu_bound_steps_per_s": round(cores * 1e6 / total) if total else None,
        }


def listener_pid(port: int) -> int | None:
    """The pid of the local process listening on TCP ``port``, if this user may see it:
    how a benchmark finds services it did not start (a broker kept warm between runs)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr \
                and connection.laddr.port == port and connection.pid:
            return int(connection.pid)
    return None
