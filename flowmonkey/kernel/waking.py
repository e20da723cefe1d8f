"""Waking up: a waiting execution goes on when its timer is due (a wake, a retry's
backoff, or a timeout that cancels it), when it is resumed with its token, or when
the child it waits for ends."""

from __future__ import annotations

from typing import Any

from flowmonkey.events import names as n
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.attempts import failure_path
from flowmonkey.kernel.cancelling import cancel_execution
from flowmonkey.kernel.decision import Decision, Txn, reject_not_found, visible_execution
from flowmonkey.kernel.error_details import bounded_error
from flowmonkey.kernel.jobs import job_timer
from flowmonkey.kernel.state import (
    WAIT_CHILD,
    WAIT_RETRY,
    WAIT_SIGNAL,
    ExecutionState,
)
from flowmonkey.kernel.step_events import email_received_data
from flowmonkey.kernel.stepping import (
    current_flow_step,
    emit_pipe_rows,
    enter_step,
    fail_execution,
    follow_transition,
)
from flowmonkey.kernel.timers import (
    EXECUTION_TIMEOUT,
    JOB_LEASE,
    JOB_TIMEOUT,
    SIGNAL_TIMEOUT,
    WAIT_TIMEOUT,
    WAKE,
    timers_for,
)
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.result import StepError


def _resume_to(tx: Txn, st: ExecutionState, flow: Flow, step: Step,
               resumed: dict[str, Any]) -> None:
    tx.emit(st, n.EXECUTION_RESUMED, resumed)
    follow_transition(tx, st, flow, step.id, step.transitions.resume_target, "resume")


def decide_timer(tx: Txn) -> Decision:
    d = tx.cmd.data
    st = tx.state(tx.cmd.execution_id)
    if st is None:
        return tx.ignore("timer for unknown execution")
    due, kind = int(d["due_at"]), d["kind"]
    if (due, kind) not in timers_for(st) or tx.now < due:
        return tx.ignore("stale timer")
    if kind == EXECUTION_TIMEOUT:
        cancel_execution(tx, st, "timeout", f"execution timed out after "
                         f"{st.timeout.execution_timeout_ms if st.timeout else '?'} ms")
        return tx.decision
    if kind in (JOB_LEASE, JOB_TIMEOUT):
        return job_timer(tx, st, kind)
    if kind in (WAIT_TIMEOUT, SIGNAL_TIMEOUT):
        # the wait's tokens expired with it (resuming with one answers TOKEN_EXPIRED);
        # the cancel then has none left to revoke
        expired = st.active_tokens()
        if expired:
            tx.emit(st, n.TOKENS_CLEANED, {"tokens": expired, "count": len(expired)})
        cancel_execution(tx, st, "timeout", f"wait at step {st.current_step_id!r} timed out",
                         expired=len(expired))
        return tx.decision
    assert kind == WAKE
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    if st.wait_kind == WAIT_RETRY:
        tx.emit(st, n.EXECUTION_RESUMED, {"step_id": step.id, "reason": "retry"})
        enter_step(tx, st, flow, step.id)
    else:
        _resume_to(tx, st, flow, step, {"step_id": step.id, "reason": "wake"})
    return tx.decision


def decide_resume(tx: Txn) -> Decision:
    d = tx.cmd.data
    st = visible_execution(tx)
    if st is None:
        return reject_not_found(tx)
    token_value = d.get("token")
    token = st.tokens.get(token_value) if isinstance(token_value, str) else None
    if token is None:
        return tx.reject(n.REJECT_INVALID_TOKEN,
                         f"resume token is not valid for execution {st.id!r}")
    if token.status == "used":
        return tx.reject(n.REJECT_TOKEN_USED, "resume token was already used")
    if token.status == "revoked":
        return tx.reject(n.REJECT_TOKEN_REVOKED, _revoked_reason(st))
    if token.status == "expired":
        return tx.reject(n.REJECT_TOKEN_EXPIRED,
                         f"resume token has expired: the wait it was issued for timed out, "
                         f"and execution {st.id!r} is {st.status.value}")
    if token.expires_at is not None and tx.now >= token.expires_at:
        return tx.reject(n.REJECT_TOKEN_EXPIRED, "resume token has expired")
    if st.status != ExecutionStatus.WAITING or st.wait_kind != WAIT_SIGNAL:
        return tx.reject(n.REJECT_NOT_WAITING,
                         f"execution {st.id!r} is not waiting for a signal "
                         f"(status: {st.status.value})")
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    data = d.get("data")
    resumed: dict[str, Any] = {"step_id": step.id, "reason": "signal", "data": data}
    writes: list[tuple[str, Any]] = []
    if step.output_key is not None:
        resumed["output_key"] = step.output_key
        writes = [(step.output_key, data)]
    elif isinstance(data, dict):
        resumed["merge"] = True
        writes = list(data.items())
    try:
        lim.check_writes(st.context, writes, st.options.limits)
    except lim.LimitViolation as violation:
        tx.decision = Decision()
        return tx.reject(violation.code, f"resume data refused: {violation.message}")
    tx.emit(st, n.TOKEN_USED, {"token": token.token})
    email = email_received_data(step, d.get("email"))
    if email is not None:  # a reply to the step's mail (kernel/step_events.py)
        tx.emit(st, n.EMAIL_RECEIVED, email)
    _resume_to(tx, st, flow, step, resumed)
    return tx.decision


def decide_child_finished(tx: Txn) -> Decision:
    """A child execution ended; a parent waiting for it at a sub-flow step goes on.

    The step attempt's one outcome event, ``step.completed`` with outcome ``wait``, was
    emitted when the handler started the child, so the child's end is a wake-up, never
    a second outcome for the same attempt. A completed child resumes the parent with
    ``{childExecutionId, flowId, status, context}`` (stored at the step's output key),
    feeds the step's success pipes and follows ``on_success``. Any other end is the
    step's failure ``CHILD_FAILED`` (details: the child's error), which takes the
    failure path: failure pipes, the step's retries (each retry starts a new child),
    ``on_failure``, or failing the parent, as for any failed attempt.
    """
    d = tx.cmd.data
    st = tx.state(tx.cmd.execution_id)
    child_id = d["child_execution_id"]
    if st is None:
        if tx.cmd.execution_id in tx.partition.forgotten:
            # it ended, and then its report was ignored: so it is now (a child that
            # outlives its parent by the retention must not log a refusal)
            return tx.ignore("parent ended and is no longer kept")
        return reject_not_found(tx, "parent execution")
    if st.is_terminal or st.children.get(child_id) != "active":
        return tx.ignore("parent no longer tracks this child")
    status = d["status"]
    error = bounded_error(d["error"]) if d.get("error") else None
    tx.emit(st, n.CHILD_FINISHED, {"child_execution_id": child_id, "status": status,
                                   "error": error})
    if not (st.status == ExecutionStatus.WAITING and st.wait_kind == WAIT_CHILD
            and st.wait_child_id == child_id):
        return tx.decision
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    if status == ExecutionStatus.COMPLETED.value:
        output = {"childExecutionId": child_id, "flowId": d.get("flow_id"), "status": status,
                  "context": d.get("context")}
        resumed: dict[str, Any] = {"step_id": step.id, "reason": "child", "data": output}
        if step.output_key is not None:
            resumed["output_key"] = step.output_key
        try:
            lim.check_writes(st.context, [(step.output_key, output)] if step.output_key else [],
                             st.options.limits)
        except lim.LimitViolation as violation:
            tx.emit(st, n.EXECUTION_RESUMED, {"step_id": step.id, "reason": "child"})
            fail_execution(tx, st, violation.code, violation.message, step.id)
            return tx.decision
        tx.emit(st, n.EXECUTION_RESUMED, resumed)
        emit_pipe_rows(tx, st, flow, step, "success", output)
        follow_transition(tx, st, flow, step.id, step.transitions.on_success, "success")
        return tx.decision
    tx.emit(st, n.EXECUTION_RESUMED, {"step_id": step.id, "reason": "child"})
    failure_path(tx, st, flow, step, StepError(
        "CHILD_FAILED", f"child execution {child_id} ended with status: {status}",
        details=error))
    return tx.decision


def _revoked_reason(st: ExecutionState) -> str:
    if st.status == ExecutionStatus.WAITING and st.wait_kind == WAIT_SIGNAL:
        return (f"resume token was revoked; execution {st.id!r} is still waiting at step "
                f"{st.current_step_id!r} and can now only time out or be cancelled")
    return f"resume token was revoked; execution {st.id!r} is {st.status.value}"
