"""``step.result``: what a handler's outcome does to the execution (FEATURES A5–A7, D3)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.kernel.state import WAIT_RETRY
from flowmonkey.kernel.timers import WAKE, next_timer
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import RetryConfig
from flowmonkey.model.result import Result, StepError, StepResult

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    linear_flow,
    make_flow,
    result_cmd,
    step,
    types,
)


def run(flow_steps: list[dict[str, Any]], **start: Any) -> KernelDriver:
    d = KernelDriver(DictEnv([make_flow("f", flow_steps)]))
    d.start("e1", "f", **start)
    return d


def retrying(retry: dict[str, Any], **step_options: Any) -> KernelDriver:
    return run([step("s", retry=retry, **step_options), step("handle")])


# --------------------------------------------------------------------------- success


def test_success_stores_the_output_at_output_key_and_moves_on() -> None:
    d = KernelDriver(DictEnv([linear_flow()]))
    d.start("e1", "linear", context={"x": 1})

    decision = d.result("e1", Result.success({"a": 1}), at=T0 + 5, duration_ms=5)

    assert types(decision.events) == [n.STEP_COMPLETED, n.TRANSITION, n.STEP_STARTED]
    completed, transition, started = decision.events
    assert completed.data == {"step_id": "s1", "step_type": "task", "attempt": 1,
                              "duration_ms": 5, "outcome": "success", "output": {"a": 1},
                              "output_key": "out1"}
    assert transition.data == {"from_step_id": "s1", "to_step_id": "s2", "outcome": "success"}
    assert started.data["step_id"] == "s2"
    assert d.state("e1").context == {"x": 1, "out1": {"a": 1}}
    assert d.state("e1").current_step_id == "s2"


def test_output_key_may_be_a_dot_path() -> None:
    d = run([step("s", output_key="a.b")], context={"a": {"keep": 1}})

    d.result("e1", Result.success(5), at=T0 + 1)

    assert d.state("e1").context == {"a": {"keep": 1, "b": 5}}


def test_success_without_output_key_leaves_the_context_alone() -> None:
    d = run([step("s")], context={"x": 1})

    decision = d.result("e1", Result.success({"a": 1}), at=T0 + 1)

    assert "output_key" not in decision.events[0].data
    assert d.state("e1").context == {"x": 1}


def test_a_none_output_is_stored_on_success() -> None:
    d = run([step("s", output_key="out")])

    d.result("e1", Result.success(None), at=T0 + 1)

    assert d.state("e1").context == {"out": None}


def test_next_step_overrides_on_success() -> None:
    d = run([step("a", on_success="b"), step("b"), step("c")])

    decision = d.result("e1", Result.success("x", next_step="c"), at=T0 + 1)

    assert decision.events[1].data["to_step_id"] == "c"
    assert d.state("e1").current_step_id == "c"


def test_an_override_to_none_completes_the_execution() -> None:
    d = run([step("a", on_success="b"), step("b")])

    decision = d.result("e1", StepResult("success", next_step=None, has_next_step=True),
                        at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_COMPLETED]


def test_a_transition_to_an_unknown_step_fails_with_invalid_transition() -> None:
    d = run([step("a", on_success="b", output_key="out"), step("b")])

    decision = d.result("e1", Result.success(1, next_step="nowhere"), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    failed = decision.events[-1]
    assert failed.data["code"] == "INVALID_TRANSITION"
    assert "'nowhere'" in failed.data["message"]
    assert failed.data["step_id"] == "a"
    state = d.state("e1")
    assert state.status == ExecutionStatus.FAILED
    assert state.context == {"out": 1}  # the output was written before the transition failed


def test_success_with_no_on_success_completes_the_execution() -> None:
    d = KernelDriver(DictEnv([linear_flow()]))
    d.start("e1", "linear")
    d.result("e1", Result.success(1), at=T0 + 1)

    decision = d.result("e1", Result.success(2), at=T0 + 2)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_COMPLETED]
    assert decision.events[-1].data == {"step_id": "s2", "total_steps": 2}
    state = d.state("e1")
    assert state.status == ExecutionStatus.COMPLETED
    assert state.attempt_id is None
    assert decision.commands == []


# --------------------------------------------------------------------------- failure


def test_a_failure_follows_on_failure() -> None:
    d = run([step("s", on_failure="handle"), step("handle")])

    decision = d.result("e1", Result.failure("BAD", "it broke"), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.TRANSITION, n.STEP_STARTED]
    completed, transition, _ = decision.events
    assert completed.data["outcome"] == "failure"
    assert completed.data["error"] == {"code": "BAD", "message": "it broke"}
    assert transition.data == {"from_step_id": "s", "to_step_id": "handle",
                               "outcome": "failure"}
    assert d.state("e1").current_step_id == "handle"


def test_a_failure_without_on_failure_fails_with_the_handlers_code() -> None:
    d = run([step("s")])

    decision = d.result("e1", Result.failure("BAD", "it broke", {"why": 1}), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert decision.events[-1].data == {"code": "BAD", "message": "it broke", "step_id": "s",
                                        "details": {"why": 1}}
    error = d.state("e1").error
    assert error is not None
    assert error["code"] == "BAD"
    assert error["details"] == {"why": 1}
    assert error["timestamp"] == T0 + 1


def test_a_failure_without_an_error_fails_with_step_failed() -> None:
    d = run([step("s")])

    decision = d.result("e1", StepResult("failure"), at=T0 + 1)

    assert decision.events[-1].data["code"] == "STEP_FAILED"
    assert d.state("e1").status == ExecutionStatus.FAILED


def test_a_failure_with_an_empty_code_fails_with_step_failed() -> None:
    d = run([step("s")])

    decision = d.result("e1", StepResult("failure", error=StepError("", "")), at=T0 + 1)

    assert decision.events[-1].data["code"] == "STEP_FAILED"
    assert decision.events[-1].data["message"] == "step failed"


def test_a_failure_to_an_unknown_on_failure_step_is_an_invalid_transition() -> None:
    flow = make_flow("f", [step("s")]).model_copy(deep=True)
    broken_step = flow.steps["s"].model_copy(update={
        "transitions": flow.steps["s"].transitions.model_copy(update={"on_failure": "gone"})})
    flow = flow.model_copy(update={"steps": {"s": broken_step}})
    d = KernelDriver(DictEnv([flow]))
    d.start("e1", "f")

    decision = d.result("e1", Result.failure("BAD", "x"), at=T0 + 1)

    assert decision.events[-1].data["code"] == "INVALID_TRANSITION"


def _failure_to(target: str | None) -> StepResult:
    """A failure whose ``nextStepOverride`` was given (``None``: given as null)."""
    return StepResult("failure", error=StepError("BAD", "it broke"), next_step=target,
                      has_next_step=True)


def test_an_override_on_failure_wins_over_on_failure() -> None:
    d = run([step("s", on_failure="handle"), step("handle"), step("other")])

    decision = d.result("e1", _failure_to("other"), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.TRANSITION, n.STEP_STARTED]
    assert decision.events[1].data == {"from_step_id": "s", "to_step_id": "other",
                                       "outcome": "failure"}


def test_a_null_override_on_failure_fails_the_execution_despite_on_failure() -> None:
    d = run([step("s", on_failure="handle"), step("handle")])

    decision = d.result("e1", _failure_to(None), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert decision.events[-1].data["code"] == "BAD"
    assert d.state("e1").status == ExecutionStatus.FAILED


def test_an_override_on_failure_to_an_unknown_step_is_an_invalid_transition() -> None:
    d = run([step("s", on_failure="handle"), step("handle")])

    decision = d.result("e1", _failure_to("nowhere"), at=T0 + 1)

    assert decision.events[-1].type == n.EXECUTION_FAILED
    assert decision.events[-1].data["code"] == "INVALID_TRANSITION"


def test_an_override_on_failure_waits_until_the_retries_are_spent() -> None:
    d = retrying({"max_attempts": 1}, on_failure="handle")

    retried = d.result("e1", _failure_to(None), at=T0 + 1)
    spent = d.result("e1", _failure_to(None), at=T0 + 2)

    assert types(retried.events) == [n.STEP_COMPLETED, n.STEP_RETRY, n.STEP_STARTED]
    assert types(spent.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]


# --------------------------------------------------------------------------- retry


def test_a_retry_without_backoff_runs_the_step_again_at_once() -> None:
    d = retrying({"max_attempts": 2})

    decision = d.result("e1", Result.failure("TEMP", "flaky"), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.STEP_RETRY, n.STEP_STARTED]
    retry, started = decision.events[1:]
    assert retry.data == {"step_id": "s", "attempt": 1, "max_attempts": 2, "backoff_ms": 0,
                          "error": {"code": "TEMP", "message": "flaky"}}
    assert started.data["attempt"] == 2
    assert started.data["step_id"] == "s"
    state = d.state("e1")
    assert state.retry_attempts == {"s": 1}
    assert state.attempt == 2
    assert state.step_count == 2


def test_a_retry_with_backoff_waits_on_a_retry_timer() -> None:
    d = retrying({"max_attempts": 2, "backoff_ms": 100})

    decision = d.result("e1", Result.failure("TEMP", "flaky"), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.STEP_RETRY, n.EXECUTION_WAITING]
    waiting = decision.events[-1]
    assert waiting.data["kind"] == WAIT_RETRY
    assert waiting.data["wake_at"] == T0 + 101
    assert waiting.data["step_id"] == "s"
    state = d.state("e1")
    assert state.status == ExecutionStatus.WAITING
    assert state.current_step_id == "s"
    assert next_timer(state) == (T0 + 101, WAKE)


def test_the_backoff_grows_by_the_multiplier_up_to_the_cap() -> None:
    d = retrying({"max_attempts": 4, "backoff_ms": 100, "backoff_multiplier": 3,
                  "max_backoff_ms": 500})
    now = T0
    seen: list[tuple[int, int]] = []
    for _ in range(4):
        now += 1
        decision = d.result("e1", Result.failure("TEMP", "flaky"), at=now)
        retry = decision.events[1]
        seen.append((retry.data["attempt"], retry.data["backoff_ms"]))
        assert decision.events[-1].data["wake_at"] == now + retry.data["backoff_ms"]
        now = decision.events[-1].data["wake_at"]
        d.fire("e1")

    assert seen == [(1, 100), (2, 300), (3, 500), (4, 500)]


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (7, 60_000)])
def test_backoff_is_min_of_base_times_multiplier_power_and_the_cap(
        attempt: int, expected: int) -> None:
    assert RetryConfig(max_attempts=9, backoff_ms=1000).backoff_for(attempt) == expected


def test_attempt_numbers_count_up_across_retries() -> None:
    d = retrying({"max_attempts": 2})
    first = d.result("e1", Result.failure("TEMP", "x"), at=T0 + 1)
    second = d.result("e1", Result.failure("TEMP", "x"), at=T0 + 2)

    third = d.result("e1", Result.success(1), at=T0 + 3)

    assert first.events[0].data["attempt"] == 1
    assert second.events[0].data["attempt"] == 2
    assert third.events[0].data["attempt"] == 3
    assert [e.data["attempt"] for e in d.history("e1") if e.type == n.STEP_STARTED] == [1, 2, 3]
    assert d.state("e1").retry_attempts == {}


def test_retries_exhausted_follow_on_failure() -> None:
    d = retrying({"max_attempts": 1}, on_failure="handle")
    d.result("e1", Result.failure("TEMP", "x"), at=T0 + 1)

    decision = d.result("e1", Result.failure("TEMP", "x"), at=T0 + 2)

    assert types(decision.events) == [n.STEP_COMPLETED, n.TRANSITION, n.STEP_STARTED]
    assert decision.events[1].data["to_step_id"] == "handle"
    assert d.state("e1").retry_attempts == {}


def test_retries_exhausted_without_on_failure_fail_with_the_last_code() -> None:
    d = retrying({"max_attempts": 1})
    d.result("e1", Result.failure("TEMP", "x"), at=T0 + 1)

    decision = d.result("e1", Result.failure("STILL", "y"), at=T0 + 2)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert decision.events[-1].data["code"] == "STILL"


def test_max_attempts_counts_retries_after_the_first_try() -> None:
    d = retrying({"max_attempts": 3})
    runs = 1
    while d.state("e1").status == ExecutionStatus.RUNNING:
        d.result("e1", Result.failure("TEMP", "x"), at=T0 + runs)
        runs += 1

    assert runs - 1 == 4
    assert d.state("e1").status == ExecutionStatus.FAILED


def test_retry_on_retries_only_the_listed_codes() -> None:
    d = retrying({"max_attempts": 3, "retry_on": ["TEMP"]})

    retried = d.result("e1", Result.failure("TEMP", "x"), at=T0 + 1)
    not_retried = d.result("e1", Result.failure("PERM", "y"), at=T0 + 2)

    assert n.STEP_RETRY in types(retried.events)
    assert types(not_retried.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert not_retried.events[-1].data["code"] == "PERM"


def test_an_empty_retry_on_retries_nothing() -> None:
    d = retrying({"max_attempts": 3, "retry_on": []})

    decision = d.result("e1", Result.failure("TEMP", "x"), at=T0 + 1)

    assert n.STEP_RETRY not in types(decision.events)


def test_retry_on_matches_step_failed_for_a_failure_without_a_code() -> None:
    d = retrying({"max_attempts": 1, "retry_on": ["STEP_FAILED"]})

    decision = d.result("e1", StepResult("failure"), at=T0 + 1)

    assert n.STEP_RETRY in types(decision.events)


def test_a_raised_exception_fails_at_once_without_retry() -> None:
    d = retrying({"max_attempts": 3}, on_failure="handle")

    decision = d.result("e1", at=T0 + 1,
                        raised={"code": "HANDLER_ERROR", "message": "boom"})

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    completed, failed = decision.events
    assert completed.data["outcome"] == "failure"
    assert completed.data["error"] == {"code": "HANDLER_ERROR", "message": "boom"}
    assert failed.data["code"] == "HANDLER_ERROR"
    assert failed.data["message"] == "boom"
    assert d.state("e1").status == ExecutionStatus.FAILED


def test_a_timeout_emits_step_timeout_then_fails_with_handler_timeout() -> None:
    d = run([step("s")])

    decision = d.result("e1", at=T0 + 30_000, timed_out=True, timeout_ms=30_000)

    assert types(decision.events) == [n.STEP_TIMEOUT, n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert decision.events[0].data == {"step_id": "s", "timeout_ms": 30_000, "attempt": 1}
    assert decision.events[1].data["error"]["code"] == "HANDLER_TIMEOUT"
    assert decision.events[2].data["code"] == "HANDLER_TIMEOUT"


def test_a_timeout_takes_the_failure_path_with_retries_and_on_failure() -> None:
    d = retrying({"max_attempts": 1}, on_failure="handle")

    first = d.result("e1", at=T0 + 1, timed_out=True, timeout_ms=10)
    second = d.result("e1", at=T0 + 2, timed_out=True, timeout_ms=10)

    assert types(first.events) == [n.STEP_TIMEOUT, n.STEP_COMPLETED, n.STEP_RETRY,
                                   n.STEP_STARTED]
    assert types(second.events) == [n.STEP_TIMEOUT, n.STEP_COMPLETED, n.TRANSITION,
                                    n.STEP_STARTED]


# --------------------------------------------------------------------------- staleness


def test_a_result_for_another_attempt_is_ignored() -> None:
    d = run([step("s")])

    decision = d.send(result_cmd("e1", "e1:999", Result.success(1), at=T0 + 1))

    assert decision.ignored == "stale step result"
    assert decision.events == []
    assert d.state("e1").status == ExecutionStatus.RUNNING


def test_a_result_for_a_superseded_attempt_is_ignored() -> None:
    d = retrying({"max_attempts": 1})
    old = d.state("e1").attempt_id
    d.result("e1", Result.failure("TEMP", "x"), at=T0 + 1)

    decision = d.send(result_cmd("e1", old, Result.success(1), at=T0 + 2))

    assert decision.ignored is not None
    assert d.state("e1").attempt == 2


def test_a_result_for_a_finished_execution_is_ignored() -> None:
    d = run([step("s")])
    attempt = d.state("e1").attempt_id
    d.result("e1", Result.success(1), at=T0 + 1)

    decision = d.send(result_cmd("e1", attempt, Result.success(2), at=T0 + 2))

    assert decision.ignored is not None


def test_a_result_for_an_unknown_execution_is_ignored() -> None:
    d = run([step("s")])

    decision = d.send(result_cmd("ghost", "ghost:3", Result.success(1), at=T0 + 1))

    assert decision.ignored is not None


# --------------------------------------------------------------------------- context writes


def test_context_writes_are_applied_before_the_output() -> None:
    d = run([step("s", output_key="out")], context={"keep": 1})

    decision = d.result("e1", Result.success(2), at=T0 + 1,
                        writes=[("a.b", 1), ("out", "overwritten")])

    assert decision.events[0].data["writes"] == [["a.b", 1], ["out", "overwritten"]]
    assert d.state("e1").context == {"keep": 1, "a": {"b": 1}, "out": 2}


def test_context_writes_are_kept_on_failure() -> None:
    d = run([step("s", on_failure="t"), step("t")])

    decision = d.result("e1", Result.failure("BAD", "x"), at=T0 + 1, writes=[("seen", True)])

    assert decision.events[0].data["writes"] == [["seen", True]]
    assert d.state("e1").context == {"seen": True}


@pytest.mark.parametrize(
    ("limits", "writes", "code"),
    [
        ({"max_size_bytes": 10}, [("big", "x" * 20)], "CONTEXT_VALUE_TOO_LARGE"),
        ({"max_depth": 2}, [("deep", {"a": {"b": {}}})], "CONTEXT_NESTING_LIMIT"),
        ({"max_keys": 2}, [("b", 1), ("c", 1)], "CONTEXT_KEY_LIMIT"),
        ({"max_total_size_bytes": 40}, [("b", "y" * 30)], "CONTEXT_SIZE_LIMIT"),
    ],
)
def test_a_write_over_a_limit_fails_with_its_context_code(
        limits: dict[str, int], writes: list[tuple[str, Any]], code: str) -> None:
    d = run([step("s", on_failure="t", retry={"max_attempts": 2}), step("t")],
            context={"a": "x"}, options={"limits": limits})

    decision = d.result("e1", Result.success(1), at=T0 + 1, writes=writes)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert decision.events[0].data["error"]["code"] == code
    assert decision.events[-1].data["code"] == code
    assert d.state("e1").context == {"a": "x"}


def test_an_output_over_a_limit_fails_with_its_context_code() -> None:
    d = run([step("s", output_key="out")], options={"limits": {"max_size_bytes": 10}})

    decision = d.result("e1", Result.success("z" * 50), at=T0 + 1)

    assert decision.events[-1].data["code"] == "CONTEXT_VALUE_TOO_LARGE"
    assert d.state("e1").context == {}


def test_an_output_that_is_not_json_fails_the_execution() -> None:
    d = run([step("s")])

    decision = d.result("e1", Result.success({"when": object()}), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert decision.events[-1].data["code"] == "INVALID_VALUE"
    assert "JSON" in decision.events[-1].data["message"]


# --------------------------------------------------------------------------- max steps


def test_max_steps_fails_before_running_one_step_too_many() -> None:
    d = KernelDriver(DictEnv([linear_flow(length=3)]))
    d.start("e1", "linear", options={"max_steps": 2})
    d.result("e1", Result.success(1), at=T0 + 1)

    decision = d.result("e1", Result.success(2), at=T0 + 2)

    assert types(decision.events) == [n.STEP_COMPLETED, n.TRANSITION, n.EXECUTION_FAILED]
    failed = decision.events[-1]
    assert failed.data["code"] == "MAX_STEPS"
    assert failed.data["step_id"] == "s3"
    assert d.state("e1").step_count == 2


def test_retries_count_towards_max_steps() -> None:
    d = KernelDriver(DictEnv([make_flow("f", [step("s", retry={"max_attempts": 5})])]))
    d.start("e1", "f", options={"max_steps": 2})

    d.result("e1", Result.failure("TEMP", "x"), at=T0 + 1)
    decision = d.result("e1", Result.failure("TEMP", "x"), at=T0 + 2)

    assert types(decision.events) == [n.STEP_COMPLETED, n.STEP_RETRY, n.EXECUTION_FAILED]
    assert decision.events[-1].data["code"] == "MAX_STEPS"


# --------------------------------------------------------------------------- pipes


PIPES: list[dict[str, Any]] = [
    {"id": "on-success", "step_id": "s", "table_id": "t",
     "mappings": [{"source_path": "user.name", "column_id": "name"},
                  {"source_path": "missing", "column_id": "gone"}],
     "static_values": {"source": "flow", "name": "static wins"}},
    {"id": "on-failure", "step_id": "s", "table_id": "t", "on": "failure",
     "mappings": [{"source_path": "error.code", "column_id": "code"}]},
    {"id": "on-any", "step_id": "s", "table_id": "t", "on": "any",
     "mappings": [{"source_path": "user.id", "column_id": "id"}]},
    {"id": "disabled", "step_id": "s", "table_id": "t", "enabled": False},
    {"id": "other-step", "step_id": "other", "table_id": "t"},
]


def piped() -> KernelDriver:
    flow = make_flow("f", [step("s", on_failure="other"), step("other")], pipes=PIPES)
    d = KernelDriver(DictEnv([flow]))
    d.start("e1", "f")
    return d


def test_pipes_emit_rows_for_matching_success_pipes() -> None:
    d = piped()

    decision = d.result("e1", Result.success({"user": {"name": "Ada", "id": 7}}), at=T0 + 1)

    assert types(decision.events) == [n.STEP_COMPLETED, n.PIPE_ROW, n.PIPE_ROW,
                                      n.EXECUTION_COMPLETED]
    first, second = decision.events[1:3]
    assert first.data == {"pipe_id": "on-success", "table_id": "t", "step_id": "s",
                          "flow_id": "f", "outcome": "success",
                          "row": {"name": "static wins", "gone": None, "source": "flow"}}
    assert second.data["pipe_id"] == "on-any"
    assert second.data["row"] == {"id": 7}


def test_pipes_emit_rows_for_matching_failure_pipes() -> None:
    d = piped()

    decision = d.result("e1", Result.failure("BAD", "x"), at=T0 + 1)

    rows = [e for e in decision.events if e.type == n.PIPE_ROW]
    assert [e.data["pipe_id"] for e in rows] == ["on-failure", "on-any"]
    assert rows[0].data["row"] == {"code": "BAD"}
    assert rows[0].data["outcome"] == "failure"
    assert types(decision.events)[-2:] == [n.TRANSITION, n.STEP_STARTED]


def test_pipes_do_not_change_the_execution() -> None:
    d = piped()
    before = d.state("e1").context

    d.result("e1", Result.success({"user": {"name": "Ada"}}), at=T0 + 1)

    assert d.state("e1").context == before
    assert d.state("e1").status == ExecutionStatus.COMPLETED


# --------------------------------------------------------------------------- history


def test_history_records_each_attempt_when_asked() -> None:
    d = KernelDriver(DictEnv([make_flow("f", [
        step("s", retry={"max_attempts": 1}, input={"type": "key", "key": "x"})])]))
    d.start("e1", "f", context={"x": 42}, options={"record_history": True})
    d.result("e1", Result.failure("TEMP", "x"), at=T0 + 10, duration_ms=10)
    d.result("e1", Result.success({"ok": True}), at=T0 + 30, duration_ms=20)

    history = d.state("e1").history

    assert [(h["step_id"], h["outcome"], h["attempt"]) for h in history] == [
        ("s", "failure", 1), ("s", "success", 2)]
    assert history[0]["error"] == {"code": "TEMP", "message": "x"}
    assert history[0]["input"] == 42
    assert history[1]["output"] == {"ok": True}
    assert history[1]["started_at"] == T0 + 10
    assert history[1]["completed_at"] == T0 + 30
    assert history[1]["duration_ms"] == 20


def test_history_is_empty_unless_asked() -> None:
    d = run([step("s")])

    d.result("e1", Result.success(1), at=T0 + 1)

    assert d.state("e1").history == ()
