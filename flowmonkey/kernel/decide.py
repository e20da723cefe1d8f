"""Deciders: a command and the current state in, the events that follow out.

``decide`` never changes the state it is given. It works on clones, applying each
event it emits through the same appliers replay uses (so later checks in the same
decision see earlier events), and returns the events, the follow-up commands for
other executions, and the resulting states. Time comes in on the command; ids are
derived from the command and the execution's seq. No I/O, clock or randomness.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import (
    Command,
    Event,
    datetime_to_ms,
    make_event,
    trusted_command,
)
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.apply import apply
from flowmonkey.kernel.command_checks import command_problem
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.env import KernelEnv
from flowmonkey.kernel.error_details import bounded_details, bounded_error, bounded_message
from flowmonkey.kernel.ids import follow_up_command_id
from flowmonkey.kernel.inputs import InputError, resolve_input
from flowmonkey.kernel.state import (
    WAIT_CHILD,
    WAIT_RETRY,
    WAIT_SIGNAL,
    WAIT_TIME,
    ExecutionState,
    PartitionState,
)
from flowmonkey.kernel.timers import (
    EXECUTION_TIMEOUT,
    SIGNAL_TIMEOUT,
    WAIT_TIMEOUT,
    WAKE,
    timers_for,
)
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.limits import ContextLimits
from flowmonkey.model.result import StepError, StepResult

DEFAULT_IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000
MAX_IDEMPOTENCY_WINDOW_MS = 7 * DEFAULT_IDEMPOTENCY_WINDOW_MS


@dataclass(slots=True)
class Decision:
    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    states: dict[str, ExecutionState] = field(default_factory=dict)
    ignored: str | None = None

    @property
    def rejected(self) -> Event | None:
        for event in self.events:
            if event.type == n.COMMAND_REJECTED:
                return event
        return None


class _Txn:
    """One decision in the making: draft states and the events emitted so far."""

    __slots__ = ("cmd", "decision", "env", "now", "partition")

    def __init__(self, partition: PartitionState, cmd: Command, env: KernelEnv) -> None:
        self.partition = partition
        self.cmd = cmd
        self.env = env
        self.now = cmd.timestamp_ms
        self.decision = Decision()

    def state(self, execution_id: str) -> ExecutionState | None:
        draft = self.decision.states.get(execution_id)
        if draft is not None:
            return draft
        current = self.partition.executions.get(execution_id)
        if current is None:
            return None
        draft = current.clone()
        self.decision.states[execution_id] = draft
        return draft

    def emit(self, st: ExecutionState, type: str, data: dict[str, Any]) -> None:
        event = make_event(type, st.id, st.seq + 1, self.now, data,
                           tenant_id=st.tenant_id, command_id=self.cmd.command_id)
        apply(st, event)
        self.decision.events.append(event)

    def create(self, execution_id: str, tenant_id: str | None,
               data: dict[str, Any]) -> ExecutionState:
        event = make_event(n.EXECUTION_CREATED, execution_id, 1, self.now, data,
                           tenant_id=tenant_id, command_id=self.cmd.command_id)
        st = apply(None, event)
        assert st is not None
        self.decision.events.append(event)
        self.decision.states[execution_id] = st
        return st

    def reject(self, code: str, reason: str) -> Decision:
        cmd = self.cmd
        self.decision.events.append(make_event(
            n.COMMAND_REJECTED, cmd.execution_id, 0, self.now,
            {"command_id": cmd.command_id, "command_type": cmd.type, "code": code,
             "reason": reason},
            tenant_id=cmd.tenant_id, command_id=cmd.command_id))
        return self.decision

    def ignore(self, reason: str) -> Decision:
        self.decision.ignored = reason
        return self.decision

    def follow_up(self, type: str, execution_id: str, data: dict[str, Any],
                  tenant_id: str | None) -> None:
        # hashed, not concatenated: ids stay short down a chain of sub-flows, and the
        # same decision made again gives the same id (its duplicate is recognised)
        self.decision.commands.append(trusted_command(
            type, follow_up_command_id(self.cmd.command_id, type, execution_id), execution_id,
            self.now, data, tenant_id))


# --------------------------------------------------------------------------- entry


def decide(partition: PartitionState, cmd: Command, env: KernelEnv) -> Decision:
    """The events (and follow-up commands) that ``cmd`` causes, given ``partition``."""
    tx = _Txn(partition, cmd, env)
    if cmd.command_id in partition.seen_commands:
        return tx.ignore("duplicate command")
    for name, value in (("command id", cmd.command_id), ("execution id", cmd.execution_id),
                        ("tenant id", cmd.tenant_id)):
        if value is not None and "\x00" in value:
            # every event of the command carries these, and stores keep them as text,
            # which cannot hold U+0000 (PostgreSQL refuses the projector's whole batch)
            return _nul_in(tx, name)
    decider = _DECIDERS.get(cmd.type)
    if decider is None:
        return tx.reject(n.REJECT_INVALID_COMMAND, f"unknown command type {cmd.type!r}")
    # A malformed command (commands come from any producer on the log) is refused by
    # explicit checks, before any decider reads it. Anything a decider raises after
    # that is the kernel's fault, not the command's: it propagates, and the processor
    # rejects the command with INTERNAL_ERROR (see processors/partition.py).
    problem = command_problem(cmd)
    if problem is not None:
        return tx.reject(n.REJECT_INVALID_COMMAND, problem)
    return decider(tx)


def _visible(tx: _Txn) -> ExecutionState | None:
    """The target execution, hidden from commands of another tenant."""
    st = tx.state(tx.cmd.execution_id)
    if st is None:
        return None
    if tx.cmd.tenant_id is not None and st.tenant_id != tx.cmd.tenant_id:
        return None
    return st


def _not_found(tx: _Txn, what: str = "execution") -> Decision:
    reason = f"{what} {tx.cmd.execution_id!r} not found"
    if tx.cmd.execution_id in tx.partition.forgotten and tx.cmd.tenant_id is None:
        # (not told to a tenant's command: the id keeps no tenant, so it could be
        # another tenant's)
        reason += (" by its processor: it ended over an hour ago (kernel.apply."
                   "RETAIN_ENDED_MS); its record and history are in the projection")
    return tx.reject(n.REJECT_EXECUTION_NOT_FOUND, reason)


def _nul_in(tx: _Txn, name: str) -> Decision:
    # (a parent is not told: its children's ids and command ids come from the kernel,
    # never with a NUL, so this is a foreign command, and a report would carry the NUL)
    return tx.reject(n.REJECT_INVALID_COMMAND, f"the {name} contains a NUL character (U+0000)")


def _flow_of(tx: _Txn, st: ExecutionState) -> Flow | None:
    return tx.env.flow(st.flow_id, st.flow_version)


# --------------------------------------------------------------------------- start


def _start(tx: _Txn) -> Decision:
    d = tx.cmd.data
    flow_id: str = d["flow_id"]
    tenant_id = tx.cmd.tenant_id
    key = d.get("idempotency_key")
    for name, value in (("idempotency key", key),
                        ("parent execution id", d.get("parent_execution_id"))):
        if isinstance(value, str) and "\x00" in value:
            return _nul_in(tx, name)  # kept as text too (see decide)
    scope = idempotency_scope(tenant_id, flow_id, key) if key else None
    if scope is not None:
        hit = tx.partition.idempotency.get(scope)
        if hit is not None and hit[1] > tx.now:
            existing = tx.state(hit[0])
            if existing is not None and (existing.tenant_id != tenant_id
                                         or existing.flow_id != flow_id):
                # The scope joins tenant, flow and key with "/", so names that contain
                # "/" can meet another tenant's or flow's scope. Never hand that
                # execution back (its context, its tokens), and name nothing of it.
                return _reject_start(
                    tx, n.REJECT_IDEMPOTENCY_CONFLICT,
                    f"idempotency key {key!r} of flow {flow_id!r} collides with a key "
                    "in use for another flow or tenant (their names joined with '/' are "
                    "the same); use another key")
            if existing is not None:
                tx.emit(existing, n.IDEMPOTENCY_HIT,
                        {"idempotency_key": key, "flow_id": flow_id,
                         "duplicate_execution_id": tx.cmd.execution_id})
                return tx.decision
    execution_id = tx.cmd.execution_id
    if execution_id in tx.partition.executions or execution_id in tx.partition.forgotten:
        return tx.reject(n.REJECT_EXECUTION_EXISTS, f"execution {execution_id!r} already exists")
    version = d.get("flow_version")
    flow = tx.env.flow(flow_id, version)
    if flow is None:
        what = f"flow {flow_id!r}" + (f" version {version!r}" if version else "")
        return _reject_start(tx, n.REJECT_FLOW_NOT_FOUND, f"{what} is not registered")
    if flow.effective_status != "published" and not d.get("allow_unpublished"):
        return _reject_start(
            tx, n.REJECT_FLOW_NOT_PUBLISHED,
            f"flow {flow.ref} is {flow.effective_status}; publish it or pass "
            "allow_unpublished=True")
    context = d.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        return _reject_start(tx, n.REJECT_INVALID_COMMAND,
                             f"context must be an object, not {type(context).__name__}")
    options = d.get("options") or {}
    limits = ContextLimits(**options["limits"]) if options.get("limits") else ContextLimits()
    try:
        for name, value in context.items():
            lim.check_value(name, value, limits)
        lim.check_context(context, limits)
    except lim.LimitViolation as violation:
        return _reject_start(tx, violation.code, violation.message)
    created: dict[str, Any] = {
        "flow_id": flow.id,
        "flow_version": flow.version,
        "context": context,
        "options": options,
    }
    for name in ("parent_execution_id", "parent_step_id", "metadata", "timeout"):
        if d.get(name) is not None:
            created[name] = d[name]
    if d.get("depth"):
        created["depth"] = d["depth"]
    if scope is not None:
        window = d.get("idempotency_window_ms") or DEFAULT_IDEMPOTENCY_WINDOW_MS
        window = max(1, min(int(window), MAX_IDEMPOTENCY_WINDOW_MS))
        created.update(idempotency_key=key, idempotency_scope=scope,
                       idempotency_expires_at=tx.now + window)
    st = tx.create(execution_id, tenant_id, created)
    parent_id = d.get("parent_execution_id")
    if parent_id and not d.get("parent_step_id") and parent_id != execution_id:
        # a caller's child (a sub-flow step's child is known to its parent already):
        # its parent, on any partition, learns of it, so its cancel reaches this one.
        # First of the follow-ups: the parent hears of the child before of its end.
        tx.follow_up(n.CMD_CHILD_ATTACH, parent_id,
                     {"child_execution_id": execution_id, "flow_id": flow.id}, tenant_id)
    tx.emit(st, n.EXECUTION_STARTED, {"step_id": flow.initial_step_id})
    _enter_step(tx, st, flow, flow.initial_step_id)
    return tx.decision


def _reject_start(tx: _Txn, code: str, reason: str) -> Decision:
    """Refuse a start; a child that cannot start tells its parent so it does not wait forever."""
    parent_id = tx.cmd.data.get("parent_execution_id")
    if parent_id:
        tx.follow_up(n.CMD_CHILD_FINISHED, parent_id, {
            "child_execution_id": tx.cmd.execution_id, "status": "failed",
            "error": {"code": code, "message": reason}, "context": None,
        }, tx.cmd.tenant_id)
    return tx.reject(code, reason)


def idempotency_scope(tenant_id: str | None, flow_id: str, key: str) -> str:
    return f"{tenant_id or ''}/{flow_id}/{key}"


# --------------------------------------------------------------------------- stepping


def _enter_step(tx: _Txn, st: ExecutionState, flow: Flow, step_id: str) -> None:
    """Start an attempt of ``step_id``; the processor then runs its handler."""
    if st.step_count >= st.options.max_steps:
        _fail(tx, st, "MAX_STEPS",
              f"execution reached its limit of {st.options.max_steps} steps", step_id)
        return
    step = flow.steps.get(step_id)
    if step is None:
        _fail(tx, st, "STEP_NOT_FOUND", f"step {step_id!r} not found in flow {flow.ref}",
              step_id)
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


def _go(tx: _Txn, st: ExecutionState, flow: Flow, from_step: str, target: str | None,
        outcome: str) -> None:
    """Follow a transition, or complete the execution when there is nowhere to go."""
    if target is None:
        tx.emit(st, n.EXECUTION_COMPLETED, {"step_id": from_step, "total_steps": st.step_count})
        _tell_parent(tx, st)
        return
    if target not in flow.steps:
        _fail(tx, st, "INVALID_TRANSITION",
              f"step {from_step!r} leads to {target!r}, which is not a step of {flow.ref}",
              from_step)
        return
    tx.emit(st, n.TRANSITION, {"from_step_id": from_step, "to_step_id": target,
                               "outcome": outcome})
    _enter_step(tx, st, flow, target)


def _fail(tx: _Txn, st: ExecutionState, code: str, message: str, step_id: str | None,
          details: Any = None) -> None:
    data: dict[str, Any] = {"code": code, "message": bounded_message(message),
                            "step_id": step_id}
    if details is not None:
        data["details"] = bounded_details(details)
    tx.emit(st, n.EXECUTION_FAILED, data)
    _tell_parent(tx, st)


def _tell_parent(tx: _Txn, st: ExecutionState) -> None:
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


def _pipes(tx: _Txn, st: ExecutionState, flow: Flow, step: Step, outcome: str,
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


def _current(tx: _Txn, st: ExecutionState) -> tuple[Flow, Step] | None:
    flow = _flow_of(tx, st)
    if flow is None:
        _fail(tx, st, "FLOW_NOT_FOUND",
              f"flow {st.flow_id}@{st.flow_version} is no longer registered", st.current_step_id)
        return None
    step = flow.steps.get(st.current_step_id or "")
    if step is None:
        _fail(tx, st, "STEP_NOT_FOUND", f"step {st.current_step_id!r} not found in {flow.ref}",
              st.current_step_id)
        return None
    return flow, step


# --------------------------------------------------------------------------- step results


def _step_result(tx: _Txn) -> Decision:
    d = tx.cmd.data
    st = tx.state(tx.cmd.execution_id)
    if st is None or st.status != ExecutionStatus.RUNNING or st.attempt_id != d["attempt_id"]:
        return tx.ignore("stale step result")
    found = _current(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    base: dict[str, Any] = {"step_id": step.id, "step_type": step.type, "attempt": st.attempt,
                            "duration_ms": int(d.get("duration_ms", 0))}
    if d.get("timed_out"):
        tx.emit(st, n.STEP_TIMEOUT, {"step_id": step.id, "timeout_ms": d.get("timeout_ms"),
                                     "attempt": st.attempt})
        _step_failed(tx, st, flow, step, base, StepError(
            "HANDLER_TIMEOUT", f"step {step.id!r} timed out after {d.get('timeout_ms')} ms"))
        return tx.decision
    raised = d.get("raised")
    if raised is not None:
        # An exception (or garbage returned) fails the execution at once: no retry. Its
        # message is the handler's text, any size and any characters: bounded like
        # every other error, or an odd message would fail the event that reports it.
        raised = bounded_error(raised)
        tx.emit(st, n.STEP_COMPLETED, {**base, "outcome": "failure", "error": raised})
        _fail(tx, st, raised["code"], raised["message"], step.id)
        return tx.decision
    result: StepResult = d["result"]
    if result.child is not None:
        refused = _child_refused(st)
        if refused is not None:
            _step_failed(tx, st, flow, step, base, refused)
            return tx.decision
    # Copies: the handler may keep (and later change) what it returned, and the events
    # go on to the projection as objects (the embedded log hands them over).
    writes: list[tuple[str, Any]] = [(w[0], private_copy(w[1])) for w in d.get("writes") or ()]
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
        _fail(tx, st, violation.code, f"step {step.id!r}: {violation.message}", step.id)
        return tx.decision
    completed: dict[str, Any] = {**base, "outcome": result.outcome, "output": output}
    if writes:
        completed["writes"] = [list(w) for w in writes]
    if stored:
        completed["output_key"] = step.output_key
    if result.outcome == "success":
        tx.emit(st, n.STEP_COMPLETED, completed)
        if result.child is not None:
            _start_child(tx, st, step, d["child_execution_id"], result)
        _pipes(tx, st, flow, step, "success", output)
        target = result.next_step if result.has_next_step else step.transitions.on_success
        _go(tx, st, flow, step.id, target, "success")
    elif result.outcome == "failure":
        if writes:
            completed["outcome"] = "failure"
        error = result.error or StepError("STEP_FAILED", "step failed")
        _step_failed(tx, st, flow, step, base, error, writes=writes,
                     has_override=result.has_next_step, override=result.next_step)
    else:
        tx.emit(st, n.STEP_COMPLETED, completed)
        _wait(tx, st, step, result, d)
    return tx.decision


def _error_data(error: StepError) -> dict[str, Any]:
    err: dict[str, Any] = {"code": error.code or "STEP_FAILED",
                           "message": error.message or "step failed"}
    if error.details is not None:
        err["details"] = error.details
    # (a handler's details and a child's error chain are any size and depth: bounded,
    # or a deep chain of sub-flows makes an event no encoder can write; bounding builds
    # new containers, so the event shares nothing with what the handler returned)
    return bounded_error(err)


def _step_failed(tx: _Txn, st: ExecutionState, flow: Flow, step: Step, base: dict[str, Any],
                 error: StepError, writes: list[tuple[str, Any]] | None = None,
                 has_override: bool = False, override: str | None = None) -> None:
    """The attempt's ``step.completed`` (outcome failure), then the failure path."""
    err = _error_data(error)
    completed: dict[str, Any] = {**base, "outcome": "failure", "error": err}
    if writes:
        completed["writes"] = [list(w) for w in writes]
    tx.emit(st, n.STEP_COMPLETED, completed)
    _failure_path(tx, st, flow, step, error, has_override, override, err)


def _failure_path(tx: _Txn, st: ExecutionState, flow: Flow, step: Step, error: StepError,
                  has_override: bool = False, override: str | None = None,
                  err: dict[str, Any] | None = None) -> None:
    """What follows a failed attempt: failure pipes, then a retry while the step has
    retries left, else the handler's ``nextStepOverride`` when it gave one (``None``
    leads nowhere and so fails the execution), else ``on_failure``,
    else failing with the handler's code."""
    if err is None:  # (bounding encodes the details: done once per failure)
        err = _error_data(error)
    code = err["code"]
    _pipes(tx, st, flow, step, "failure", {"error": err})
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
            _enter_step(tx, st, flow, step.id)
        return
    target = override if has_override else step.transitions.on_failure
    if target is not None:
        _go(tx, st, flow, step.id, target, "failure")
        return
    _fail(tx, st, code, err["message"], step.id, err.get("details"))


def _wait(tx: _Txn, st: ExecutionState, step: Step, result: StepResult,
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


def _start_child(tx: _Txn, st: ExecutionState, step: Step, child_id: str,
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


# --------------------------------------------------------------------------- waking up


def _resume_to(tx: _Txn, st: ExecutionState, flow: Flow, step: Step,
               resumed: dict[str, Any]) -> None:
    tx.emit(st, n.EXECUTION_RESUMED, resumed)
    _go(tx, st, flow, step.id, step.transitions.resume_target, "resume")


def _timer(tx: _Txn) -> Decision:
    d = tx.cmd.data
    st = tx.state(tx.cmd.execution_id)
    if st is None:
        return tx.ignore("timer for unknown execution")
    due, kind = int(d["due_at"]), d["kind"]
    if (due, kind) not in timers_for(st) or tx.now < due:
        return tx.ignore("stale timer")
    if kind == EXECUTION_TIMEOUT:
        _cancel(tx, st, "timeout", f"execution timed out after "
                f"{st.timeout.execution_timeout_ms if st.timeout else '?'} ms")
        return tx.decision
    if kind in (WAIT_TIMEOUT, SIGNAL_TIMEOUT):
        # the wait's tokens expired with it (resuming with one answers TOKEN_EXPIRED);
        # the cancel then has none left to revoke
        expired = st.active_tokens()
        if expired:
            tx.emit(st, n.TOKENS_CLEANED, {"tokens": expired, "count": len(expired)})
        _cancel(tx, st, "timeout", f"wait at step {st.current_step_id!r} timed out",
                expired=len(expired))
        return tx.decision
    assert kind == WAKE
    found = _current(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    if st.wait_kind == WAIT_RETRY:
        tx.emit(st, n.EXECUTION_RESUMED, {"step_id": step.id, "reason": "retry"})
        _enter_step(tx, st, flow, step.id)
    else:
        _resume_to(tx, st, flow, step, {"step_id": step.id, "reason": "wake"})
    return tx.decision


def _resume(tx: _Txn) -> Decision:
    d = tx.cmd.data
    st = _visible(tx)
    if st is None:
        return _not_found(tx)
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
    found = _current(tx, st)
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
    _resume_to(tx, st, flow, step, resumed)
    return tx.decision


def _child_finished(tx: _Txn) -> Decision:
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
        return _not_found(tx, "parent execution")
    if st.is_terminal or st.children.get(child_id) != "active":
        return tx.ignore("parent no longer tracks this child")
    status = d["status"]
    error = bounded_error(d["error"]) if d.get("error") else None
    tx.emit(st, n.CHILD_FINISHED, {"child_execution_id": child_id, "status": status,
                                   "error": error})
    if not (st.status == ExecutionStatus.WAITING and st.wait_kind == WAIT_CHILD
            and st.wait_child_id == child_id):
        return tx.decision
    found = _current(tx, st)
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
            _fail(tx, st, violation.code, violation.message, step.id)
            return tx.decision
        tx.emit(st, n.EXECUTION_RESUMED, resumed)
        _pipes(tx, st, flow, step, "success", output)
        _go(tx, st, flow, step.id, step.transitions.on_success, "success")
        return tx.decision
    tx.emit(st, n.EXECUTION_RESUMED, {"step_id": step.id, "reason": "child"})
    _failure_path(tx, st, flow, step, StepError(
        "CHILD_FAILED", f"child execution {child_id} ended with status: {status}",
        details=error))
    return tx.decision


def _child_attach(tx: _Txn) -> Decision:
    """A child created with ``parent_execution_id`` registers with its parent
    (``child.attach``, the follow-up of the child's start), so the parent's cancel
    cascades to it as to a sub-flow step's child, whatever partitions the two are on.

    An active parent records it (``child.attached``); its end then comes back as
    ``child.finished`` like any child's. A cancelled parent has it cancelled at once
    (it would be an orphan of a cancelled tree). A completed or failed parent lets it
    run. ``EngineOptions.max_children`` counts attached children
    too (one bound on the parent's list of children): a child over the limit is
    cancelled at once, the reason naming the limit. A parent that does not exist (or
    is another tenant's, or was forgotten long after it ended) changes nothing: the
    child keeps the link in its own record, and nothing cascades to it.
    """
    d = tx.cmd.data
    child_id: str = d["child_execution_id"]
    st = tx.state(tx.cmd.execution_id)
    if st is None or st.tenant_id != tx.cmd.tenant_id:
        return tx.ignore("parent not found: the link stays on the child only")
    if child_id in st.children:
        return tx.ignore("parent tracks this child already")
    reason: str | None = None
    if st.status == ExecutionStatus.CANCELLED:
        reason = f"parent {st.id} was cancelled before the child registered with it"
    elif st.is_terminal:
        return tx.ignore("parent has ended: its child runs on")
    elif len(st.children) >= st.options.max_children:
        reason = (f"parent {st.id} has {len(st.children)} children, the limit "
                  "(EngineOptions.max_children)")
    if reason is not None:
        tx.follow_up(n.CMD_CANCEL, child_id, {"source": "parent", "reason": reason},
                     tx.cmd.tenant_id)
        return tx.decision
    tx.emit(st, n.CHILD_ATTACHED, {"child_execution_id": child_id,
                                   "flow_id": d.get("flow_id")})
    return tx.decision


# --------------------------------------------------------------------------- cancel


def _cancel_command(tx: _Txn) -> Decision:
    st = _visible(tx)
    if st is None:
        return _not_found(tx)
    if st.status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING,
                         ExecutionStatus.WAITING):
        return tx.reject(n.REJECT_NOT_CANCELLABLE,
                         f"execution {st.id!r} is {st.status.value}; only pending, running "
                         "or waiting executions can be cancelled")
    d = tx.cmd.data
    _cancel(tx, st, d.get("source") or "user", d.get("reason"))
    return tx.decision


def _cancel(tx: _Txn, st: ExecutionState, source: str, reason: str | None,
            expired: int = 0) -> None:
    """Cancel ``st``: revoke its active tokens, cancel its active children (sub-flow
    steps' and attached ones). ``expired``: tokens that expired just before, with the
    wait that timed out, counted with the revoked ones as invalidated."""
    tx.emit(st, n.EXECUTION_CANCELLING, {"source": source, "reason": reason})
    tokens = st.active_tokens()
    for token in tokens:
        tx.emit(st, n.TOKEN_REVOKED, {"token": token, "reason": "cancelled"})
    children = st.active_children()
    for child_id in children:
        tx.follow_up(n.CMD_CANCEL, child_id,
                     {"source": "parent", "reason": f"parent {st.id} cancelled"}, st.tenant_id)
    tx.emit(st, n.EXECUTION_CANCELLED, {
        "source": source, "reason": reason, "step_id": st.current_step_id,
        "tokens_invalidated": len(tokens) + expired, "children_cancelled": len(children)})
    _tell_parent(tx, st)


def _revoked_reason(st: ExecutionState) -> str:
    if st.status == ExecutionStatus.WAITING and st.wait_kind == WAIT_SIGNAL:
        return (f"resume token was revoked; execution {st.id!r} is still waiting at step "
                f"{st.current_step_id!r} and can now only time out or be cancelled")
    return f"resume token was revoked; execution {st.id!r} is {st.status.value}"


def _revoke_token(tx: _Txn) -> Decision:
    """Revoke a resume token (``token.revoke``); only an active token can be revoked.

    Revoking the token of the signal wait in progress only marks the token and does not
    end the wait: the execution stays ``waiting`` at its step. It can no longer be
    resumed with that token (``execution.resume`` is
    refused with ``TOKEN_REVOKED``, saying the execution still waits), and no new token
    is issued, so the wait ends only by its signal timeout (the token's expiry, which
    still fires: see ``ExecutionState.signal_deadline``), by the execution's wait or
    execution timeout, or by cancellation. A signal wait with none of these timeouts
    waits until it is cancelled.
    """
    st = _visible(tx)
    if st is None:
        return _not_found(tx)
    token = st.tokens.get(tx.cmd.data["token"])  # (a string: see command_checks)
    if token is None:
        return tx.reject(n.REJECT_INVALID_TOKEN, "resume token is not valid for this execution")
    if token.status != "active":
        code = {"used": n.REJECT_TOKEN_USED, "expired": n.REJECT_TOKEN_EXPIRED}.get(
            token.status, n.REJECT_TOKEN_REVOKED)
        return tx.reject(code, f"resume token is already {token.status}")
    tx.emit(st, n.TOKEN_REVOKED, {"token": token.token, "reason": tx.cmd.data.get("reason")})
    return tx.decision


_DECIDERS = {
    n.CMD_START: _start,
    n.CMD_STEP_RESULT: _step_result,
    n.CMD_TIMER: _timer,
    n.CMD_RESUME: _resume,
    n.CMD_CANCEL: _cancel_command,
    n.CMD_CHILD_FINISHED: _child_finished,
    n.CMD_CHILD_ATTACH: _child_attach,
    n.CMD_REVOKE_TOKEN: _revoke_token,
}

__all__ = ["Decision", "decide", "idempotency_scope"]
