"""Deciders: a command and the current state in, the events that follow out.

``decide`` never changes the state it is given. It works on clones, applying each
event it emits through the same appliers replay uses (so later checks in the same
decision see earlier events), and returns the events, the follow-up commands for
other executions, and the resulting states. Time comes in on the command; ids are
derived from the command and the execution's seq. No I/O, clock or randomness.

This module dispatches each command to its decider and decides starts; the others
live by what they do: ``attempts`` (step results), ``waking`` (timers, resumes, a
child's end), ``cancelling`` (cancels, attaching children, revoking tokens) and
``jobs`` (stateful handlers' jobs), ``triggers`` (what starts executions without
code: its own entities, ``trigger:<id>``), ``forms`` (public forms' submissions, on
entities ``form:<id>``), all built on ``decision`` (the decision in the making) and
``stepping`` (steps, transitions, pipes, an execution's end). What a handler may
report beside its outcome (``email.sent``), and the inbound email a resume records
(``email.received``), is allow-listed in ``step_events``.
"""

from __future__ import annotations

from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.attempts import decide_step_result
from flowmonkey.kernel.cancelling import decide_cancel, decide_child_attach, decide_revoke_token
from flowmonkey.kernel.command_checks import command_problem
from flowmonkey.kernel.decision import Decision, Txn
from flowmonkey.kernel.env import KernelEnv
from flowmonkey.kernel.forms import decide_form_command
from flowmonkey.kernel.jobs import add_job_views, decide_job_command
from flowmonkey.kernel.state import PartitionState
from flowmonkey.kernel.stepping import enter_step
from flowmonkey.kernel.trigger_apply import is_trigger_entity
from flowmonkey.kernel.triggers import (
    add_event_trigger_fires,
    decide_trigger_command,
    decide_trigger_timer,
)
from flowmonkey.kernel.waking import decide_child_finished, decide_resume, decide_timer
from flowmonkey.model.limits import ContextLimits

DEFAULT_IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000
MAX_IDEMPOTENCY_WINDOW_MS = 7 * DEFAULT_IDEMPOTENCY_WINDOW_MS


# --------------------------------------------------------------------------- entry


def decide(partition: PartitionState, cmd: Command, env: KernelEnv) -> Decision:
    """The events (and follow-up commands) that ``cmd`` causes, given ``partition``."""
    tx = Txn(partition, cmd, env)
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
        decision = tx.reject(n.REJECT_INVALID_COMMAND, problem)
    else:
        decision = decider(tx)
    if decision.ignored is None and (cmd.type in n.JOB_WORKER_COMMANDS
                                     or _touches_jobs(decision)):
        add_job_views(partition, cmd, decision)
    if decision.states:
        add_event_trigger_fires(tx, decision)
    return decision


def _touches_jobs(decision: Decision) -> bool:
    return any(event.type.startswith("job.") for event in decision.events)


def _nul_in(tx: Txn, name: str) -> Decision:
    # (a parent is not told: its children's ids and command ids come from the kernel,
    # never with a NUL, so this is a foreign command, and a report would carry the NUL)
    return tx.reject(n.REJECT_INVALID_COMMAND, f"the {name} contains a NUL character (U+0000)")


# --------------------------------------------------------------------------- start


def _start(tx: Txn) -> Decision:
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
    enter_step(tx, st, flow, flow.initial_step_id)
    return tx.decision


def _timer(tx: Txn) -> Decision:
    if is_trigger_entity(tx.cmd.execution_id):
        return decide_trigger_timer(tx)
    return decide_timer(tx)


def _reject_start(tx: Txn, code: str, reason: str) -> Decision:
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


_DECIDERS = {
    n.CMD_START: _start,
    n.CMD_STEP_RESULT: decide_step_result,
    n.CMD_TIMER: _timer,
    n.CMD_RESUME: decide_resume,
    n.CMD_CANCEL: decide_cancel,
    n.CMD_CHILD_FINISHED: decide_child_finished,
    n.CMD_CHILD_ATTACH: decide_child_attach,
    n.CMD_REVOKE_TOKEN: decide_revoke_token,
    n.CMD_JOB_CREATE: decide_job_command,
    **dict.fromkeys(n.JOB_WORKER_COMMANDS, decide_job_command),
    **dict.fromkeys(n.TRIGGER_COMMANDS, decide_trigger_command),
    **dict.fromkeys(n.FORM_COMMANDS, decide_form_command),
}

__all__ = ["Decision", "decide", "idempotency_scope"]
