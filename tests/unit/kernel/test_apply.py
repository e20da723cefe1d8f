"""Appliers: one event in, the state after it out — never validating, never failing."""

from __future__ import annotations

import dataclasses
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event, make_event
from flowmonkey.kernel.apply import APPLIERS, apply, apply_to_partition, replay
from flowmonkey.kernel.decide import idempotency_scope
from flowmonkey.kernel.state import (
    WAIT_CHILD,
    WAIT_RETRY,
    WAIT_SIGNAL,
    WAIT_TIME,
    ExecutionState,
    PartitionState,
    TokenState,
)
from flowmonkey.model.execution import ExecutionStatus

from .support import T0

CREATED = {"flow_id": "f", "flow_version": "1", "context": {"a": 1}}


def ev(type: str, seq: int, data: dict[str, Any] | None = None, at: int | None = None) -> Event:
    return make_event(type, "e1", seq, T0 + seq if at is None else at, data or {},
                      tenant_id="acme", command_id=f"c{seq}")


def created(**extra: Any) -> ExecutionState:
    state = apply(None, ev(n.EXECUTION_CREATED, 1, {**CREATED, **extra}))
    assert state is not None
    return state


def running(**extra: Any) -> ExecutionState:
    """Created, started, and running attempt ``e1:3`` of step ``s``."""
    state = created(**extra)
    apply(state, ev(n.EXECUTION_STARTED, 2, {"step_id": "s"}))
    apply(state, ev(n.STEP_STARTED, 3, {"step_id": "s", "step_type": "task", "attempt": 1,
                                        "attempt_id": "e1:3", "input": {"in": 1}}))
    return state


def waiting(kind: str = WAIT_TIME, **data: Any) -> ExecutionState:
    state = running()
    apply(state, ev(n.STEP_COMPLETED, 4, {"step_id": "s", "outcome": "wait", "output": None}))
    apply(state, ev(n.EXECUTION_WAITING, 5, {"step_id": "s", "kind": kind, **data}))
    return state


# --------------------------------------------------------------------------- the fold


def test_every_history_event_type_has_an_applier() -> None:
    history_types = {n.EXECUTION_STARTED, n.EXECUTION_WAITING, n.EXECUTION_RESUMED,
                     n.EXECUTION_COMPLETED, n.EXECUTION_FAILED, n.EXECUTION_CANCELLING,
                     n.EXECUTION_CANCELLED, n.STEP_STARTED, n.STEP_COMPLETED, n.STEP_TIMEOUT,
                     n.STEP_RETRY, n.TRANSITION, n.IDEMPOTENCY_HIT, n.TOKEN_CREATED,
                     n.TOKEN_USED, n.TOKEN_REVOKED, n.TOKENS_CLEANED, n.CHILD_STARTED,
                     n.CHILD_ATTACHED, n.CHILD_FINISHED, n.PIPE_ROW, n.JOB_CREATED,
                     n.JOB_CLAIMED, n.JOB_HEARTBEAT, n.JOB_PROGRESS, n.JOB_CHECKPOINT,
                     n.JOB_COMPLETED, n.JOB_FAILED, n.JOB_SUPERSEDED, n.JOB_LEASE_EXPIRED,
                     n.JOB_RELEASED, n.JOB_TIMED_OUT, n.JOB_CANCELLED, n.EMAIL_SENT,
                     n.EMAIL_RECEIVED}
    assert set(APPLIERS) == history_types


def test_an_event_at_or_below_the_current_seq_is_ignored() -> None:
    state = running()
    before = dataclasses.asdict(state)

    apply(state, ev(n.EXECUTION_FAILED, 3, {"code": "X", "message": "late"}))
    apply(state, ev(n.EXECUTION_COMPLETED, 2))

    assert dataclasses.asdict(state) == before


def test_applying_the_same_events_twice_is_harmless() -> None:
    events = [ev(n.EXECUTION_CREATED, 1, CREATED), ev(n.EXECUTION_STARTED, 2, {"step_id": "s"}),
              ev(n.STEP_STARTED, 3, {"step_id": "s", "attempt": 1, "attempt_id": "e1:3"})]

    once = replay(events)
    twice = replay(events + events)

    assert once is not None
    assert twice is not None
    assert dataclasses.asdict(once) == dataclasses.asdict(twice)
    assert twice.step_count == 1


def test_a_seq_zero_event_changes_nothing() -> None:
    state = running()
    before = dataclasses.asdict(state)

    result = apply(state, make_event(n.COMMAND_REJECTED, "e1", 0, T0 + 99,
                                     {"code": "X", "reason": "y"}, command_id="c"))

    assert result is state
    assert dataclasses.asdict(state) == before


def test_a_seq_zero_event_creates_nothing() -> None:
    assert apply(None, make_event(n.COMMAND_REJECTED, "e1", 0, T0, {})) is None


def test_an_event_before_creation_creates_nothing() -> None:
    assert apply(None, ev(n.EXECUTION_STARTED, 2, {"step_id": "s"})) is None


def test_an_unknown_event_type_only_advances_seq() -> None:
    state = running()
    before = dataclasses.asdict(state)

    apply(state, ev("something.new", 4, {"x": 1}))

    after = dataclasses.asdict(state)
    assert after.pop("seq") == 4
    assert after.pop("updated_at") == T0 + 4
    before.pop("seq")
    before.pop("updated_at")
    assert after == before


def test_every_event_advances_seq_and_updated_at() -> None:
    state = running()

    apply(state, ev(n.PIPE_ROW, 4, {"row": {}}, at=T0 + 500))

    assert state.seq == 4
    assert state.updated_at == T0 + 500


# --------------------------------------------------------------------------- one per type


def test_created_builds_a_pending_execution() -> None:
    state = created(options={"record_history": True, "max_steps": 9,
                             "limits": {"max_keys": 3}},
                    parent_execution_id="p", parent_step_id="call", metadata={"m": 1},
                    timeout={"wait_timeout_ms": 10}, idempotency_key="k",
                    idempotency_expires_at=T0 + 5)

    assert state.id == "e1"
    assert state.tenant_id == "acme"
    assert state.status == ExecutionStatus.PENDING
    assert state.flow_id == "f"
    assert state.flow_version == "1"
    assert state.context == {"a": 1}
    assert state.seq == 1
    assert state.created_at == state.updated_at == T0 + 1
    assert state.options.record_history is True
    assert state.options.max_steps == 9
    assert state.options.limits.max_keys == 3
    assert state.parent_execution_id == "p"
    assert state.parent_step_id == "call"
    assert state.metadata == {"m": 1}
    assert state.timeout is not None
    assert state.timeout.wait_timeout_ms == 10
    assert state.idempotency_key == "k"
    assert state.idempotency_expires_at == T0 + 5


def test_started_sets_running_at_the_step() -> None:
    state = created()

    apply(state, ev(n.EXECUTION_STARTED, 2, {"step_id": "s"}))

    assert state.status == ExecutionStatus.RUNNING
    assert state.current_step_id == "s"


def test_step_started_opens_an_attempt_and_counts_it() -> None:
    state = waiting()

    apply(state, ev(n.STEP_STARTED, 6, {"step_id": "t", "attempt": 2, "attempt_id": "e1:6",
                                        "input": 5}))

    assert state.status == ExecutionStatus.RUNNING
    assert state.current_step_id == "t"
    assert state.attempt == 2
    assert state.attempt_id == "e1:6"
    assert state.step_started_at == T0 + 6
    assert state.step_input == 5
    assert state.step_count == 2
    assert state.wait_kind is None
    assert state.wake_at is None


def test_step_completed_writes_then_stores_output_and_closes_the_attempt() -> None:
    state = running()
    state.retry_attempts = {"s": 2, "other": 1}

    apply(state, ev(n.STEP_COMPLETED, 4, {
        "step_id": "s", "outcome": "success", "output": {"o": 1}, "output_key": "x.y",
        "writes": [["w", 1], ["x.z", 2]]}))

    assert state.context == {"a": 1, "w": 1, "x": {"z": 2, "y": {"o": 1}}}
    assert state.attempt_id is None
    assert state.retry_attempts == {"other": 1}
    assert state.step_input is None


def test_step_completed_records_history_when_asked() -> None:
    state = running(options={"record_history": True})

    apply(state, ev(n.STEP_COMPLETED, 4, {
        "step_id": "s", "step_type": "task", "attempt": 1, "outcome": "failure",
        "error": {"code": "X"}, "duration_ms": 3}, at=T0 + 10))

    assert state.history == ({
        "step_id": "s", "handler_type": "task", "outcome": "failure", "attempt": 1,
        "input": {"in": 1}, "output": None, "error": {"code": "X"}, "started_at": T0 + 3,
        "completed_at": T0 + 10, "duration_ms": 3},)
    assert state.retry_attempts == {}


def test_step_completed_does_not_touch_the_previous_context_object() -> None:
    state = running()
    old_context = state.context

    apply(state, ev(n.STEP_COMPLETED, 4, {"step_id": "s", "outcome": "success",
                                          "output": 1, "output_key": "b"}))

    assert state.context == {"a": 1, "b": 1}
    assert old_context == {"a": 1}


def test_step_timeout_changes_nothing_but_seq() -> None:
    state = running()
    before = dataclasses.asdict(state)

    apply(state, ev(n.STEP_TIMEOUT, 4, {"step_id": "s", "timeout_ms": 5}))

    assert {k: v for k, v in dataclasses.asdict(state).items()
            if k not in ("seq", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("seq", "updated_at")}


def test_step_retry_counts_the_attempt() -> None:
    state = running()

    apply(state, ev(n.STEP_RETRY, 4, {"step_id": "s", "attempt": 2}))

    assert state.retry_attempts == {"s": 2}


def test_transition_moves_and_clears_the_from_steps_retries() -> None:
    state = running()
    state.retry_attempts = {"s": 1}

    apply(state, ev(n.TRANSITION, 4, {"from_step_id": "s", "to_step_id": "t",
                                      "outcome": "failure"}))

    assert state.current_step_id == "t"
    assert state.retry_attempts == {}


def test_waiting_records_the_wait() -> None:
    state = running()

    apply(state, ev(n.EXECUTION_WAITING, 4, {"step_id": "s", "kind": WAIT_CHILD,
                                             "reason": "kid", "child_execution_id": "c1"}))

    assert state.status == ExecutionStatus.WAITING
    assert state.attempt_id is None
    assert state.wait_kind == WAIT_CHILD
    assert state.wait_started_at == T0 + 4
    assert state.wait_reason == "kid"
    assert state.wait_child_id == "c1"
    assert state.wake_at is None


def test_waiting_for_time_records_wake_at() -> None:
    state = waiting(WAIT_RETRY, wake_at=T0 + 100)

    assert state.wait_kind == WAIT_RETRY
    assert state.wake_at == T0 + 100


def test_resumed_stores_data_at_output_key_and_runs() -> None:
    state = waiting(WAIT_SIGNAL)

    apply(state, ev(n.EXECUTION_RESUMED, 6, {"step_id": "s", "data": {"ok": 1},
                                             "output_key": "r"}))

    assert state.context == {"a": 1, "r": {"ok": 1}}
    assert state.status == ExecutionStatus.RUNNING
    assert state.wait_kind is None
    assert state.wait_started_at is None


def test_resumed_merges_data_when_asked() -> None:
    state = waiting(WAIT_SIGNAL)

    apply(state, ev(n.EXECUTION_RESUMED, 6, {"step_id": "s", "data": {"a": 2, "b": 3},
                                             "merge": True}))

    assert state.context == {"a": 2, "b": 3}


def test_resumed_without_output_key_or_merge_keeps_the_context() -> None:
    state = waiting()

    apply(state, ev(n.EXECUTION_RESUMED, 6, {"step_id": "s", "data": {"b": 3}}))

    assert state.context == {"a": 1}


def test_token_created_adds_an_active_token_and_makes_it_current() -> None:
    state = waiting(WAIT_SIGNAL)

    apply(state, ev(n.TOKEN_CREATED, 6, {"token": "t", "expires_at": T0 + 50}))

    assert state.tokens == {"t": TokenState("t", "active", T0 + 6, T0 + 50)}
    assert state.resume_token == "t"
    assert state.active_tokens() == ["t"]


def test_token_used_marks_it_used_and_clears_the_current_token() -> None:
    state = waiting(WAIT_SIGNAL)
    apply(state, ev(n.TOKEN_CREATED, 6, {"token": "t"}))

    apply(state, ev(n.TOKEN_USED, 7, {"token": "t"}))

    assert state.tokens["t"].status == "used"
    assert state.tokens["t"].created_at == T0 + 6
    assert state.resume_token is None
    assert state.active_tokens() == []


def test_token_revoked_marks_it_revoked() -> None:
    state = waiting(WAIT_SIGNAL)
    apply(state, ev(n.TOKEN_CREATED, 6, {"token": "t"}))

    apply(state, ev(n.TOKEN_REVOKED, 7, {"token": "t", "reason": "x"}))

    assert state.tokens["t"].status == "revoked"
    assert state.resume_token is None


def test_a_status_event_for_an_unknown_token_changes_no_token() -> None:
    state = waiting(WAIT_SIGNAL)

    apply(state, ev(n.TOKEN_USED, 6, {"token": "ghost"}))

    assert state.tokens == {}


def test_child_started_tracks_an_active_child() -> None:
    state = running()

    apply(state, ev(n.CHILD_STARTED, 4, {"child_execution_id": "c1", "flow_id": "k"}))

    assert state.children == {"c1": "active"}
    assert state.active_children() == ["c1"]


def test_child_finished_records_the_childs_status() -> None:
    state = running()
    apply(state, ev(n.CHILD_STARTED, 4, {"child_execution_id": "c1"}))

    apply(state, ev(n.CHILD_FINISHED, 5, {"child_execution_id": "c1", "status": "failed"}))

    assert state.children == {"c1": "failed"}
    assert state.active_children() == []


def test_completed_ends_the_execution() -> None:
    state = running()

    apply(state, ev(n.EXECUTION_COMPLETED, 4, {"step_id": "s", "total_steps": 1}))

    assert state.status == ExecutionStatus.COMPLETED
    assert state.is_terminal
    assert state.attempt_id is None


def test_failed_records_the_error() -> None:
    state = waiting()

    apply(state, ev(n.EXECUTION_FAILED, 6, {"code": "BAD", "message": "m", "step_id": "s",
                                            "details": [1]}))

    assert state.status == ExecutionStatus.FAILED
    assert state.error == {"code": "BAD", "message": "m", "step_id": "s", "details": [1],
                           "timestamp": T0 + 6}
    assert state.wait_kind is None
    assert state.wake_at is None


def test_cancelling_closes_the_attempt() -> None:
    state = running()

    apply(state, ev(n.EXECUTION_CANCELLING, 4, {"source": "user"}))

    assert state.status == ExecutionStatus.CANCELLING
    assert state.attempt_id is None


def test_cancelled_records_the_cancellation() -> None:
    state = waiting()

    apply(state, ev(n.EXECUTION_CANCELLED, 6, {"source": "parent", "reason": "r"}))

    assert state.status == ExecutionStatus.CANCELLED
    assert state.cancellation == {"source": "parent", "reason": "r", "cancelled_at": T0 + 6}
    assert state.wait_kind is None


def test_idempotency_hit_changes_nothing_but_seq() -> None:
    state = running()

    apply(state, ev(n.IDEMPOTENCY_HIT, 4, {"idempotency_key": "k"}))

    assert state.seq == 4
    assert state.status == ExecutionStatus.RUNNING


def test_pipe_row_changes_nothing_but_seq() -> None:
    state = running()
    context = state.context

    apply(state, ev(n.PIPE_ROW, 4, {"row": {"a": 2}}))

    assert state.seq == 4
    assert state.context is context


# --------------------------------------------------------------------------- partition


def test_apply_to_partition_indexes_idempotency_and_notes_commands() -> None:
    partition = PartitionState()
    scope = idempotency_scope("acme", "f", "k")

    apply_to_partition(partition, ev(n.EXECUTION_CREATED, 1, {
        **CREATED, "idempotency_key": "k", "idempotency_scope": scope,
        "idempotency_expires_at": T0 + 10}))
    apply_to_partition(partition, make_event(n.COMMAND_REJECTED, "e9", 0, T0, {},
                                             command_id="rejected"))

    assert partition.idempotency == {scope: ("e1", T0 + 10)}
    assert "c1" in partition.seen_commands
    assert "rejected" in partition.seen_commands
    assert set(partition.executions) == {"e1"}
