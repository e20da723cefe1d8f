"""Step attempts: what a handler's result (or a job's end) does to its execution:
the attempt's ``step.completed``, its output and writes stored, then the transition,
the wait it asks for (a timer, a signal, a child), or the failure path (failure
pipes, retries with backoff, ``on_failure``, failing the execution)."""

from __future__ import annotations

from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import datetime_to_ms
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.decision import Decision, Txn
from flowmonkey.kernel.error_details import bounded_error
from flowmonkey.kernel.state import (
    WAIT_CHILD,
    WAIT_RETRY,
    WAIT_SIGNAL,
    WAIT_TIME,
    ExecutionState,
)
from flowmonkey.kernel.step_events import record_step_events
from flowmonkey.kernel.stepping import (
    current_flow_step,
    emit_pipe_rows,
    enter_step,
    fail_execution,
    follow_transition,
)
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.result import StepError, StepResult


def decide_step_result(tx: Txn) -> Decision:
    d = tx.cmd.data
    st = tx.state(tx.cmd.execution_id)
    if st is None or st.status != ExecutionStatus.RUNNING or st.attempt_id != d["attempt_id"]:
        return tx.ignore("stale step result")
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    base: dict[str, Any] = {"step_id": step.id, "step_type": step.type, "attempt": st.attempt,
                            "duration_ms": int(d.get("duration_ms", 0))}
    if d.get("timed_out"):
        tx.emit(st, n.STEP_TIMEOUT, {"step_id": step.id, "timeout_ms": d.get("timeout_ms"),
                                     "attempt": st.attempt})
        step_failed(tx, st, flow, step, base, StepError(
            "HANDLER_TIMEOUT", f"step {step.id!r} timed out after {d.get('timeout_ms')} ms"))
        return tx.decision
    raised = d.get("raised")
    if raised is not None:
        # An exception (or garbage returned) fails the execution at once: no retry. Its
        # message is the handler's text, any size and any characters: bounded like
        # every other error, or an odd message would fail the event that reports it.
        raised = bounded_error(raised)
        tx.emit(st, n.STEP_COMPLETED, {**base, "outcome": "failure", "error": raised})
        fail_execution(tx, st, raised["code"], raised["message"], step.id)
        return tx.decision
    result: StepResult = d["result"]
    if result.child is not None:
        refused = _child_refused(st)
        if refused is not None:
            step_failed(tx, st, flow, step, base, refused)
            return tx.decision
    # Copies: the handler may keep (and later change) what it returned, and the events
    # go on to the projection as objects (the embedded log hands them over).
    writes: list[tuple[str, Any]] = [(w[0], private_copy(w[1])) for w in d.get("writes") or ()]
    attempt_outcome(tx, st, flow, step, base, result, writes, d)
    return tx.decision


def attempt_outcome(tx: Txn, st: ExecutionState, flow: Flow, step: Step,
                    base: dict[str, Any], result: StepResult,
                    writes: list[tuple[str, Any]], d: dict[str, Any]) -> None:
    """What a step attempt's result (a handler's, or a job's completion) does: its
    ``step.completed``, the output and writes checked and stored, then pipes and the
    transition, the failure path, or the wait. ``writes`` are the caller's copies.
    The facts the attempt reports (``result.events``) are recorded first."""
    if result.events:
        record_step_events(tx, st, step, result.events)
    output = private_copy(result.output)
    if result.child is not None and result.child.wait is False:
        output = {"childExecutionId": d["child_execution_id"], "flowId": result.child.flow_id,
                  "mode": "fire-and-forget"}
    stored = []
    if step.output_key is not None and (result.outcome == "success" or output is not None) \
            and result.outcome != "failure":
        stored = [(step.output_key, output)]
    try:
        if output is not None and (writes or not stored):
            # (when the output is the only value written, check_writes encodes it
            # first anyway, refusing it the same way)
            lim.encoded_size(output)
        lim.check_writes(st.context, writes + stored, st.options.limits)
    except lim.LimitViolation as violation:
        tx.emit(st, n.STEP_COMPLETED, {**base, "outcome": "failure", "error": {
            "code": violation.code, "message": violation.message}})
        fail_execution(tx, st, violation.code, f"step {step.id!r}: {violation.message}", step.id)
        return
    completed: dict[str, Any] = {**base, "outcome": result.outcome, "output": output}
    if writes:
        completed["writes"] = [list(w) for w in writes]
    if stored:
        completed["output_key"] = step.output_key
    if result.outcome == "success":
        tx.emit(st, n.STEP_COMPLETED, completed)
        if result.child is not None:
            _start_child(tx, st, step, d["child_execution_id"], result)
        emit_pipe_rows(tx, st, flow, step, "success", output)
        target = result.next_step if result.has_next_step else step.transitions.on_success
        follow_transition(tx, st, flow, step.id, target, "success")
    elif result.outcome == "failure":
        if writes:
            completed["outcome"] = "failure"
        error = result.error or StepError("STEP_FAILED", "step failed")
        step_failed(tx, st, flow, step, base, error, writes=writes,
                    has_override=result.has_next_step, override=result.next_step)
    else:
        tx.emit(st, n.STEP_COMPLETED, completed)
        _wait(tx, st, step, result, d)


def _error_data(error: StepError) -> dict[str, Any]:
    err: dict[str, Any] = {"code": error.code or "STEP_FAILED",
                           "message": error.message or "step failed"}
    if error.details is not None:
        err["details"] = error.details
    # (a handler's details and a child's error chain are any size and depth: bounded,
    # or a deep chain of sub-flows makes an event no encoder can write; bounding builds
    # new containers, so the event shares nothing with what the handler returned)
    return bounded_error(err)


def step_failed(tx: Txn, st: ExecutionState, flow: Flow, step: Step, base: dict[str, Any],
                error: StepError, writes: list[tuple[str, Any]] | None = None,
                has_override: bool = False, override: str | None = None) -> None:
    """The attempt's ``step.completed`` (outcome failure), then the failure path."""
    err = _error_data(error)
    completed: dict[str, Any] = {**base, "outcome": "failure", "error": err}
    if writes:
        completed["writes"] = [list(w) for w in writes]
    tx.emit(st, n.STEP_COMPLETED, completed)
    failure_path(tx, st, flow, step, error, has_override, override, err)


def failure_path(tx: Txn, st: ExecutionState, flow: Flow, step: Step, error: StepError,
                 has_override: bool = False, override: str | None = None,
                 err: dict[str, Any] | None = None) -> None:
    """What follows a failed attempt: failure pipes, then a retry while the step has
    retries left, else the handler's ``nextStepOverride`` when it gave one (``None``
    leads nowhere and so fails the execution), else ``on_failure``,
    else failing with the handler's code."""
    if err is None:  # (bounding encodes the details: done once per failure)
        err = _error_data(error)
    code = err["code"]
    emit_pipe_rows(tx, st, flow, step, "failure", {"error": err})
    retry = step.retry
    done = st.retry_attempts.get(step.id, 0)
    if retry is not None and retry.retries(code) and done < retry.max_attempts:
        attempt = done + 1
        backoff = retry.backoff_for(attempt)
        tx.emit(st, n.STEP_RETRY, {"step_id": step.id, "attempt": attempt,
                                   "max_attempts": retry.max_attempts, "backoff_ms": backoff,
                                   "error": err})
        if backoff > 0:
            tx.emit(st, n.EXECUTION_WAITING, {
                "step_id": step.id, "kind": WAIT_RETRY, "wake_at": tx.now + backoff,
                "reason": f"retry {attempt}/{retry.max_attempts} after {backoff} ms"})
        else:
            enter_step(tx, st, flow, step.id)
        return
    target = override if has_override else step.transitions.on_failure
    if target is not None:
        follow_transition(tx, st, flow, step.id, target, "failure")
        return
    fail_execution(tx, st, code, err["message"], step.id, err.get("details"))


def _wait(tx: Txn, st: ExecutionState, step: Step, result: StepResult,
          d: dict[str, Any]) -> None:
    if result.child is not None:
        child_id = d["child_execution_id"]
        _start_child(tx, st, step, child_id, result)
        tx.emit(st, n.EXECUTION_WAITING, {
            "step_id": step.id, "kind": WAIT_CHILD, "child_execution_id": child_id,
            "reason": f"waiting for child execution {child_id}"})
        return
    if result.for_signal:
        token = result.resume_token or d.get("resume_token")
        if not token:
            raise ValueError("a signal wait needs a resume token")
        expires_at = None
        if result.signal_timeout_ms:
            expires_at = tx.now + result.signal_timeout_ms
        tx.emit(st, n.EXECUTION_WAITING, {"step_id": step.id, "kind": WAIT_SIGNAL,
                                          "reason": result.wait_reason})
        tx.emit(st, n.TOKEN_CREATED, {"token": token, "step_id": step.id,
                                      "expires_at": expires_at})
        return
    if result.wake_at is not None:
        wake_at = datetime_to_ms(result.wake_at)
    else:
        wake_at = tx.now + int(result.wait_ms or 0)
    tx.emit(st, n.EXECUTION_WAITING, {"step_id": step.id, "kind": WAIT_TIME,
                                      "wake_at": wake_at, "reason": result.wait_reason})


def _child_refused(st: ExecutionState) -> StepError | None:
    """Why ``st`` may not start another child, checked as the child would start (the
    step fails with it, so it can go to its ``on_failure``), or None."""
    options = st.options
    if st.depth + 1 > options.max_subflow_depth:
        return StepError(
            lim.SUBFLOW_DEPTH_EXCEEDED,
            f"a child of execution {st.id!r} would be {st.depth + 1} sub-flow levels deep, "
            f"over the limit of {options.max_subflow_depth} (EngineOptions."
            "max_subflow_depth); does the flow call itself without end?")
    if len(st.children) >= options.max_children:
        return StepError(
            lim.CHILDREN_LIMIT_EXCEEDED,
            f"execution {st.id!r} has started {len(st.children)} children, the limit "
            f"(EngineOptions.max_children)")
    return None


def _start_child(tx: Txn, st: ExecutionState, step: Step, child_id: str,
                 result: StepResult) -> None:
    spec = result.child
    assert spec is not None
    tx.emit(st, n.CHILD_STARTED, {"child_execution_id": child_id, "flow_id": spec.flow_id,
                                  "step_id": step.id, "wait": spec.wait})
    child_input = spec.input if spec.input is not None else {}
    tx.follow_up(n.CMD_START, child_id, {
        "flow_id": spec.flow_id, "flow_version": spec.flow_version,
        "context": child_input if isinstance(child_input, dict) else {"input": child_input},
        "parent_execution_id": st.id, "parent_step_id": step.id, "depth": st.depth + 1,
        "options": {"record_history": st.options.record_history,
                    "max_steps": st.options.max_steps,
                    "limits": st.options.limits.model_dump(),
                    "max_subflow_depth": st.options.max_subflow_depth,
                    "max_children": st.options.max_children},
    }, st.tenant_id)
