"""The stored form of ExecutionState: every field survives a trip through JSON."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from flowmonkey.kernel.state import ExecutionOptions, ExecutionState, TokenState
from flowmonkey.kernel.state_codec import state_from_json, state_to_json
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.limits import ContextLimits, TimeoutConfig


def _minimal() -> ExecutionState:
    return ExecutionState(id="e1", flow_id="orders", flow_version="1", tenant_id=None,
                          created_at=1, options=ExecutionOptions())


def _every_field_set() -> ExecutionState:
    return ExecutionState(
        id="e2", flow_id="refunds", flow_version="7", tenant_id="acme", created_at=1_000,
        options=ExecutionOptions(record_history=True, max_steps=12, limits=ContextLimits(
            max_size_bytes=10, max_total_size_bytes=20, max_depth=3, max_keys=4),
            max_subflow_depth=5, max_children=6),
        status=ExecutionStatus.WAITING, seq=9, updated_at=2_000, current_step_id="approve",
        context={"order": {"id": 5, "lines": [1, 2.5, None, True]}},
        history=({"step_id": "charge", "handler_type": "http", "outcome": "success",
                  "attempt": 1, "input": {"a": 1}, "output": "ok", "error": None,
                  "started_at": 1_001, "completed_at": 1_002, "duration_ms": 1},),
        retry_attempts={"charge": 2}, step_count=3, attempt=2, attempt_id="e2:5",
        step_started_at=1_500, step_input=[1, "two"], wait_kind="signal", wake_at=5_000,
        wait_started_at=1_900, wait_reason="approval",
        wait_child_id="child-1", resume_token="tok-1", signal_deadline=9_000,
        tokens={"tok-1": TokenState("tok-1", "active", 1_900, 9_000),
                "tok-0": TokenState("tok-0", "revoked", 1_800, None)},
        parent_execution_id="p1", parent_step_id="spawn", children={"c1": "completed"},
        depth=2,
        error={"code": "X", "message": "m", "step_id": "s", "details": None,
               "timestamp": 3},
        cancellation={"source": "user", "reason": "r", "cancelled_at": 4},
        timeout=TimeoutConfig(execution_timeout_ms=60_000, wait_timeout_ms=1_000),
        metadata={"source": "api"}, idempotency_key="k1", idempotency_expires_at=7_000,
    )


def _through_json(state: ExecutionState) -> ExecutionState:
    return state_from_json(orjson.loads(orjson.dumps(state_to_json(state))))


def test_the_full_state_fixture_sets_every_field_away_from_its_default() -> None:
    full, minimal = _every_field_set(), _minimal()
    same = [f.name for f in dataclasses.fields(ExecutionState)
            if getattr(full, f.name) == getattr(minimal, f.name)]
    assert same == []


@pytest.mark.parametrize("state", [_minimal(), _every_field_set()],
                         ids=["defaults", "every-field"])
def test_a_state_survives_a_round_trip_through_json(state: ExecutionState) -> None:
    assert _through_json(state) == state


def test_the_loaded_state_has_the_original_types() -> None:
    loaded = _through_json(_every_field_set())
    assert isinstance(loaded.status, ExecutionStatus)
    assert isinstance(loaded.history, tuple)
    assert isinstance(loaded.tokens["tok-1"], TokenState)
    assert isinstance(loaded.options.limits, ContextLimits)
    assert isinstance(loaded.timeout, TimeoutConfig)


def test_the_loaded_state_gives_the_same_public_execution() -> None:
    state = _every_field_set()
    assert _through_json(state).to_execution() == state.to_execution()


def test_an_unknown_stored_format_is_refused() -> None:
    raw = state_to_json(_minimal())
    raw["format"] = 99
    with pytest.raises(ValueError, match="format 99"):
        state_from_json(raw)
