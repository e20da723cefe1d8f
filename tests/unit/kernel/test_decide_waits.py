"""Wait outcomes (A5) and ``timer.fire``: waking, retry wakes, and timeouts (B5, F5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.kernel.state import WAIT_SIGNAL, WAIT_TIME
from flowmonkey.kernel.timers import (
    EXECUTION_TIMEOUT,
    SIGNAL_TIMEOUT,
    WAIT_TIMEOUT,
    WAKE,
    next_timer,
    timers_for,
)
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import Result

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    make_flow,
    step,
    timer_cmd,
    types,
)


def run(flow_steps: list[dict[str, Any]], **start: Any) -> KernelDriver:
    d = KernelDriver(DictEnv([make_flow("f", flow_steps)]))
    d.start("e1", "f", **start)
    return d


def waiting_flow(**wait_step: Any) -> list[dict[str, Any]]:
    return [step("w", **{"on_success": "next", **wait_step}), step("next"), step("after")]


# --------------------------------------------------------------------------- waits


def test_a_time_wait_waits_until_now_plus_the_duration() -> None:
    d = run(waiting_flow())

    decision = d.result("e1", Result.wait(500, reason="nap"), at=T0 + 10)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_WAITING]
    assert decision.events[0].data["outcome"] == "wait"
    assert decision.events[1].data == {"step_id": "w", "kind": WAIT_TIME,
                                       "wake_at": T0 + 510, "reason": "nap"}
    state = d.state("e1")
    assert state.status == ExecutionStatus.WAITING
    assert state.wait_kind == WAIT_TIME
    assert state.wake_at == T0 + 510
    assert state.wait_started_at == T0 + 10
    assert state.wait_reason == "nap"
    assert state.attempt_id is None
    assert next_timer(state) == (T0 + 510, WAKE)


def test_wait_until_waits_until_the_given_time() -> None:
    d = run(waiting_flow())
    when = datetime.fromtimestamp((T0 + 60_000) / 1000, UTC)

    decision = d.result("e1", Result.wait_until(when), at=T0 + 10)

    assert decision.events[-1].data["wake_at"] == T0 + 60_000


def test_a_signal_wait_creates_a_token_that_expires_after_timeout_ms() -> None:
    d = run(waiting_flow())

    decision = d.result("e1", Result.wait_for_signal("approve", timeout_ms=1000), at=T0 + 10,
                        resume_token="tok")

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_WAITING, n.TOKEN_CREATED]
    assert decision.events[1].data == {"step_id": "w", "kind": WAIT_SIGNAL,
                                       "reason": "approve"}
    assert decision.events[2].data == {"token": "tok", "step_id": "w",
                                       "expires_at": T0 + 1010}
    state = d.state("e1")
    assert state.resume_token == "tok"
    assert state.tokens["tok"].status == "active"
    assert state.wake_at is None
    assert timers_for(state) == [(T0 + 1010, SIGNAL_TIMEOUT)]


def test_a_signal_wait_without_timeout_has_no_expiry_and_no_timer() -> None:
    d = run(waiting_flow())

    decision = d.result("e1", Result.wait_for_signal(), at=T0 + 10, resume_token="tok")

    assert decision.events[-1].data["expires_at"] is None
    assert timers_for(d.state("e1")) == []


def test_a_token_chosen_by_the_handler_is_used() -> None:
    d = run(waiting_flow())

    d.result("e1", Result.wait_for_signal(resume_token="mine"), at=T0 + 10,
             resume_token="runner's")

    assert d.state("e1").resume_token == "mine"


def test_a_signal_wait_without_any_token_is_refused() -> None:
    d = run(waiting_flow())

    decision = d.result("e1", Result.wait_for_signal(), at=T0 + 10)

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_COMMAND
    assert d.state("e1").status == ExecutionStatus.RUNNING


def test_a_waiting_steps_output_is_stored_at_output_key() -> None:
    d = run(waiting_flow(output_key="progress"))

    decision = d.result("e1", Result.wait(100, output={"done": 3}), at=T0 + 1)

    assert decision.events[0].data["output_key"] == "progress"
    assert d.state("e1").context == {"progress": {"done": 3}}


def test_a_wait_without_output_stores_nothing() -> None:
    d = run(waiting_flow(output_key="progress"))

    decision = d.result("e1", Result.wait(100), at=T0 + 1)

    assert "output_key" not in decision.events[0].data
    assert d.state("e1").context == {}


# --------------------------------------------------------------------------- waking


def test_a_wake_resumes_at_on_resume() -> None:
    d = run(waiting_flow(on_resume="after"))
    d.result("e1", Result.wait(500), at=T0 + 10)

    decision = d.fire("e1")

    assert types(decision.events) == [n.EXECUTION_RESUMED, n.TRANSITION, n.STEP_STARTED]
    assert decision.events[0].data == {"step_id": "w", "reason": "wake"}
    assert decision.events[1].data == {"from_step_id": "w", "to_step_id": "after",
                                       "outcome": "resume"}
    state = d.state("e1")
    assert state.current_step_id == "after"
    assert state.status == ExecutionStatus.RUNNING
    assert state.wait_kind is None
    assert state.wake_at is None


def test_a_wake_resumes_at_on_success_without_on_resume() -> None:
    d = run(waiting_flow())
    d.result("e1", Result.wait(500), at=T0 + 10)

    decision = d.fire("e1")

    assert decision.events[1].data["to_step_id"] == "next"


def test_a_wake_with_nowhere_to_go_completes_the_execution() -> None:
    d = run([step("w")])
    d.result("e1", Result.wait(500), at=T0 + 10)

    decision = d.fire("e1")

    assert types(decision.events) == [n.EXECUTION_RESUMED, n.EXECUTION_COMPLETED]


def test_a_retry_wake_runs_the_same_step_again_with_the_next_attempt() -> None:
    d = run([step("s", retry={"max_attempts": 2, "backoff_ms": 100})])
    d.result("e1", Result.failure("TEMP", "x"), at=T0 + 10)

    decision = d.fire("e1")

    assert types(decision.events) == [n.EXECUTION_RESUMED, n.STEP_STARTED]
    assert decision.events[0].data == {"step_id": "s", "reason": "retry"}
    assert decision.events[1].data["step_id"] == "s"
    assert decision.events[1].data["attempt"] == 2
    assert decision.events[1].timestamp_ms == T0 + 110


@pytest.mark.parametrize(
    ("due_offset", "kind", "at_offset"),
    [
        (499, WAKE, 600),  # not the timer the execution has
        (510, EXECUTION_TIMEOUT, 600),  # a kind it does not have
        (510, WAKE, 509),  # fired before it is due
    ],
)
def test_a_timer_the_execution_does_not_have_is_ignored(
        due_offset: int, kind: str, at_offset: int) -> None:
    d = run(waiting_flow())
    d.result("e1", Result.wait(500), at=T0 + 10)

    decision = d.send(timer_cmd("e1", T0 + due_offset, kind, at=T0 + at_offset))

    assert decision.ignored == "stale timer"
    assert d.state("e1").status == ExecutionStatus.WAITING


def test_a_timer_that_already_fired_is_ignored() -> None:
    d = run(waiting_flow())
    d.result("e1", Result.wait(500), at=T0 + 10)
    d.fire("e1")

    decision = d.send(timer_cmd("e1", T0 + 510, WAKE, at=T0 + 520))

    assert decision.ignored is not None


def test_a_timer_for_an_unknown_execution_is_ignored() -> None:
    d = run(waiting_flow())

    decision = d.send(timer_cmd("ghost", T0, WAKE))

    assert decision.ignored is not None


def test_an_execution_timeout_cancels_a_running_execution() -> None:
    d = run(waiting_flow(), timeout={"execution_timeout_ms": 1000})
    assert next_timer(d.state("e1")) == (T0 + 1000, EXECUTION_TIMEOUT)

    decision = d.fire("e1")

    assert types(decision.events) == [n.EXECUTION_CANCELLING, n.EXECUTION_CANCELLED]
    assert decision.events[0].data["source"] == "timeout"
    cancelled = decision.events[1].data
    assert cancelled["source"] == "timeout"
    assert "timed out" in cancelled["reason"]
    state = d.state("e1")
    assert state.status == ExecutionStatus.CANCELLED
    assert state.cancellation == {"source": "timeout", "reason": cancelled["reason"],
                                  "cancelled_at": T0 + 1000}
    assert timers_for(state) == []


def test_a_wait_timeout_cancels_a_waiting_execution() -> None:
    d = run(waiting_flow(), timeout={"wait_timeout_ms": 300})
    d.result("e1", Result.wait(1000), at=T0 + 10)
    assert next_timer(d.state("e1")) == (T0 + 310, WAIT_TIMEOUT)

    decision = d.fire("e1")

    assert types(decision.events) == [n.EXECUTION_CANCELLING, n.EXECUTION_CANCELLED]
    assert decision.events[-1].data["source"] == "timeout"
    assert decision.events[-1].data["step_id"] == "w"


def test_an_expired_signal_token_cancels_the_wait_and_expires_the_token() -> None:
    d = run(waiting_flow())
    d.result("e1", Result.wait_for_signal(timeout_ms=1000), at=T0 + 10, resume_token="tok")

    decision = d.fire("e1")

    assert types(decision.events) == [n.TOKENS_CLEANED, n.EXECUTION_CANCELLING,
                                      n.EXECUTION_CANCELLED]
    assert decision.events[0].data == {"tokens": ["tok"], "count": 1}
    assert decision.events[-1].data["source"] == "timeout"
    assert decision.events[-1].data["tokens_invalidated"] == 1
    assert d.state("e1").tokens["tok"].status == "expired"


def test_the_earliest_timer_is_the_next_one() -> None:
    d = run(waiting_flow(), timeout={"execution_timeout_ms": 5000, "wait_timeout_ms": 2000})
    d.result("e1", Result.wait(1000), at=T0 + 10)

    assert sorted(timers_for(d.state("e1"))) == [
        (T0 + 1010, WAKE), (T0 + 2010, WAIT_TIMEOUT), (T0 + 5000, EXECUTION_TIMEOUT)]
    assert next_timer(d.state("e1")) == (T0 + 1010, WAKE)
