"""Stepping: starting a step attempt, following a transition, writing pipe rows, and
ending an execution (completed by a transition to nowhere, or failed), telling its
parent and cancelling its open job."""

from __future__ import annotations

import contextlib
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.decision import Txn
from flowmonkey.kernel.error_details import bounded_details, bounded_error, bounded_message
from flowmonkey.kernel.inputs import InputError, resolve_input
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.kernel.triggers import report_run_end
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import Flow, Step


def _flow_of(tx: Txn, st: ExecutionState) -> Flow | None:
    return tx.env.flow(st.flow_id, st.flow_version)


def enter_step(tx: Txn, st: ExecutionState, flow: Flow, step_id: str) -> None:
    """Start an attempt of ``step_id``; the processor then runs its handler."""
    if st.step_count >= st.options.max_steps:
        fail_execution(tx, st, "MAX_STEPS",
                       f"execution reached its limit of {st.options.max_steps} steps", step_id)
        return
    step = flow.steps.get(step_id)
    if step is None:
        fail_execution(tx, st, "STEP_NOT_FOUND",
                       f"step {step_id!r} not found in flow {flow.ref}", step_id)
        return
    # (whether a handler exists for step.type is not asked: that is a fact of the
    # process that runs it, not of the log, and two processes must decide alike; the
    # runner reports a missing handler as the attempt's result)
    attempt = st.retry_attempts.get(step_id, 0) + 1
    started: dict[str, Any] = {
        "step_id": step_id, "step_type": step.type, "attempt": attempt,
        "attempt_id": f"{st.id}:{st.seq + 1}",
    }
    if st.options.record_history:
        # History keeps each attempt's input (B8); the runner reports an unresolvable one.
        # A copy: the event must share nothing with the state's context.
        with contextlib.suppress(InputError):
            started["input"] = private_copy(resolve_input(step.input, st.context))
    tx.emit(st, n.STEP_STARTED, started)


def follow_transition(tx: Txn, st: ExecutionState, flow: Flow, from_step: str,
                      target: str | None, outcome: str) -> None:
    """Follow a transition, or complete the execution when there is nowhere to go."""
    if target is None:
        tx.emit(st, n.EXECUTION_COMPLETED, {"step_id": from_step, "total_steps": st.step_count})
        tell_parent(tx, st)
        return
    if target not in flow.steps:
        fail_execution(
            tx, st, "INVALID_TRANSITION",
            f"step {from_step!r} leads to {target!r}, which is not a step of {flow.ref}",
            from_step)
        return
    tx.emit(st, n.TRANSITION, {"from_step_id": from_step, "to_step_id": target,
                               "outcome": outcome})
    enter_step(tx, st, flow, target)


def fail_execution(tx: Txn, st: ExecutionState, code: str, message: str,
                   step_id: str | None, details: Any = None) -> None:
    data: dict[str, Any] = {"code": code, "message": bounded_message(message),
                            "step_id": step_id}
    if details is not None:
        data["details"] = bounded_details(details)
    if st.job is not None:
        cancel_open_job(tx, st, f"execution failed: {code}")
    tx.emit(st, n.EXECUTION_FAILED, data)
    tell_parent(tx, st)


def tell_parent(tx: Txn, st: ExecutionState) -> None:
    """The execution ended: its parent (if any) and the trigger that started it (if
    any) hear of it."""
    if st.metadata is not None:
        report_run_end(tx, st)
    if st.parent_execution_id is None:
        return
    tx.follow_up(n.CMD_CHILD_FINISHED, st.parent_execution_id, {
        "child_execution_id": st.id,
        "flow_id": st.flow_id,
        "status": st.status.value,
        "context": st.context if st.status == ExecutionStatus.COMPLETED else None,
        "error": bounded_error(st.error) if st.error else (
            {"code": "CANCELLED", "message": "child execution was cancelled"}
            if st.status == ExecutionStatus.CANCELLED else None),
    }, st.tenant_id)


def emit_pipe_rows(tx: Txn, st: ExecutionState, flow: Flow, step: Step, outcome: str,
                   output: Any) -> None:
    """A ``pipe.row`` per matching pipe: rows are written by projections, never here."""
    if not flow.pipes:
        return
    from flowmonkey.kernel.paths import MISSING, get_path

    for pipe in flow.pipes:
        if not pipe.enabled or pipe.step_id != step.id:
            continue
        if pipe.on != "any" and pipe.on != outcome:
            continue
        row: dict[str, Any] = {}
        for mapping in pipe.mappings:
            value = get_path(output, mapping.source_path)
            row[mapping.column_id] = None if value is MISSING else value
        if pipe.static_values:
            row.update(pipe.static_values)
        tx.emit(st, n.PIPE_ROW, {"pipe_id": pipe.id, "table_id": pipe.table_id,
                                 "step_id": step.id, "flow_id": flow.id, "outcome": outcome,
                                 "row": row})


def current_flow_step(tx: Txn, st: ExecutionState) -> tuple[Flow, Step] | None:
    flow = _flow_of(tx, st)
    if flow is None:
        fail_execution(tx, st, "FLOW_NOT_FOUND",
                       f"flow {st.flow_id}@{st.flow_version} is no longer registered",
                       st.current_step_id)
        return None
    step = flow.steps.get(st.current_step_id or "")
    if step is None:
        fail_execution(tx, st, "STEP_NOT_FOUND",
                       f"step {st.current_step_id!r} not found in {flow.ref}",
                       st.current_step_id)
        return None
    return flow, step


def cancel_open_job(tx: Txn, st: ExecutionState, reason: str) -> None:
    """The execution ends (cancelled, timed out, failed) while its job is open."""
    job = st.job
    if job is not None:
        tx.emit(st, n.JOB_CANCELLED, {"job_id": job.job_id,
                                      "reason": bounded_message(reason)[:500]})
