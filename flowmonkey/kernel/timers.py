"""Timers are state: which timers an execution has follows from its fields alone, so a
processor that rebuilds state after a crash gets its timers back for free."""

from __future__ import annotations

from flowmonkey.kernel.state import WAIT_RETRY, WAIT_SIGNAL, WAIT_TIME, ExecutionState
from flowmonkey.model.execution import ExecutionStatus

WAKE = "wake"
EXECUTION_TIMEOUT = "execution_timeout"
WAIT_TIMEOUT = "wait_timeout"
SIGNAL_TIMEOUT = "signal_timeout"


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
        if (timeout is not None and timeout.wait_timeout_ms
                and state.wait_started_at is not None):
            found.append((state.wait_started_at + timeout.wait_timeout_ms, WAIT_TIMEOUT))
        # The deadline is the wait's, not the token's: revoking the token keeps it.
        if state.wait_kind == WAIT_SIGNAL and state.signal_deadline is not None:
            found.append((state.signal_deadline, SIGNAL_TIMEOUT))
    return found


def next_timer(state: ExecutionState) -> tuple[int, str] | None:
    timers = timers_for(state)
    return min(timers) if timers else None
