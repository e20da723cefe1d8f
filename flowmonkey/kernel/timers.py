"""Timers are state: which timers an execution has follows from its fields alone, so a
processor that rebuilds state after a crash gets its timers back for free."""

from __future__ import annotations

from flowmonkey.kernel.job_state import CLAIMED
from flowmonkey.kernel.state import (
    WAIT_JOB,
    WAIT_RETRY,
    WAIT_SIGNAL,
    WAIT_TIME,
    ExecutionState,
)
from flowmonkey.model.execution import ExecutionStatus

WAKE = "wake"
EXECUTION_TIMEOUT = "execution_timeout"
WAIT_TIMEOUT = "wait_timeout"
SIGNAL_TIMEOUT = "signal_timeout"
# the open job's claim ran out (its worker stopped heartbeating), and its total timeout
JOB_LEASE = "job_lease"
JOB_TIMEOUT = "job_timeout"


def timers_for(state: ExecutionState) -> list[tuple[int, str]]:
    """``(due_ms, kind)`` of every timer the execution has now."""
    if state.is_terminal or state.status == ExecutionStatus.CANCELLING:
        return []
    found: list[tuple[int, str]] = []
    timeout = state.timeout
    if timeout is not None and timeout.execution_timeout_ms:
        found.append((state.created_at + timeout.execution_timeout_ms, EXECUTION_TIMEOUT))
    if state.status == ExecutionStatus.WAITING:
        if state.wait_kind in (WAIT_TIME, WAIT_RETRY) and state.wake_at is not None:
            found.append((state.wake_at, WAKE))
        # (a job is bounded by its own timeout, not by the wait timeout)
        if (timeout is not None and timeout.wait_timeout_ms
                and state.wait_started_at is not None and state.wait_kind != WAIT_JOB):
            found.append((state.wait_started_at + timeout.wait_timeout_ms, WAIT_TIMEOUT))
        # The deadline is the wait's, not the token's: revoking the token keeps it.
        if state.wait_kind == WAIT_SIGNAL and state.signal_deadline is not None:
            found.append((state.signal_deadline, SIGNAL_TIMEOUT))
    job = state.job
    if job is not None:
        found.append((job.deadline_at, JOB_TIMEOUT))
        if job.status == CLAIMED and job.lease_expires_at is not None:
            found.append((job.lease_expires_at, JOB_LEASE))
    return found


def next_timer(state: ExecutionState) -> tuple[int, str] | None:
    timers = timers_for(state)
    return min(timers) if timers else None
