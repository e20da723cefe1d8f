"""The processor's part in jobs: a stateful handler's attempt becomes ``job.create``
instead of running here, and the job views a decision gives go to the jobs topic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, Event, trusted_command
from flowmonkey.handlers.base import HandlerMetadata
from flowmonkey.kernel.jobs import DEFAULT_HEARTBEAT_MS, DEFAULT_JOB_TIMEOUT_MS
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.log.base import OutRecord
from flowmonkey.model.flow import Step


def job_create_command(state: ExecutionState, step: Step, metadata: HandlerMetadata,
                       attempt_id: str, now_ms: int) -> Command:
    """The ``job.create`` for the attempt in flight. Whether a handler is stateful is
    this process's fact (its registry), not the log's, so it travels on the command:
    every process decides the same from it."""
    timeout_ms = step.timeout_ms or metadata.job_timeout_ms or DEFAULT_JOB_TIMEOUT_MS
    heartbeat_ms = step.heartbeat_ms or metadata.heartbeat_ms or DEFAULT_HEARTBEAT_MS
    return trusted_command(
        n.CMD_JOB_CREATE, f"job-create:{attempt_id}", state.id, now_ms,
        {"attempt_id": attempt_id, "job_type": step.type, "timeout_ms": timeout_ms,
         "heartbeat_ms": heartbeat_ms}, state.tenant_id)


def job_view_records(topic: str, partition: int, views: list[dict[str, Any]]) -> list[OutRecord]:
    """The jobs topic's records for a decision's views: keyed by job id (compaction
    keeps each job's latest), on the execution's partition number."""
    return [OutRecord(topic, orjson.dumps(view), key=view["job_id"].encode(),
                      partition=partition) for view in views]


def refused_job_view(command: Command, code: str, reason: str) -> list[dict[str, Any]]:
    """The answer to a worker's command the engine failed on (none for other
    commands): the job's state is not known here, only that the command was refused."""
    job_id = command.data.get("job_id")
    if command.type not in n.JOB_WORKER_COMMANDS or not isinstance(job_id, str):
        return []
    return [{"job_id": job_id, "execution_id": command.execution_id, "status": "unknown",
             "answer": {"command_id": command.command_id, "accepted": False, "code": code,
                        "reason": reason}}]


def count_job_events(events: Sequence[Event], counts: dict[str, int],
                     claim_latencies_ms: list[int]) -> None:
    """Add a decision's job events to ``counts`` (by type) and its claims' latencies
    (offered to claimed, as the kernel measured them) to ``claim_latencies_ms``: the
    processor's job metrics (lease expiries and timeouts happen here, not in a worker)."""
    for event in events:
        if event.type.startswith("job."):
            counts[event.type] = counts.get(event.type, 0) + 1
            if event.type == n.JOB_CLAIMED:
                claim_latencies_ms.append(int(event.data.get("claim_latency_ms", 0)))
