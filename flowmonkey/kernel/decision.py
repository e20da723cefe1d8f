"""A decision in the making: the ``Decision`` that ``decide`` returns, and ``Txn``,
the draft it is built on (clones of the states it touches, the events emitted so far,
each applied to its draft at once, so later checks see earlier events), with the
lookups every decider starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, Event, make_event, trusted_command
from flowmonkey.kernel.apply import apply
from flowmonkey.kernel.env import KernelEnv
from flowmonkey.kernel.form_apply import apply_form
from flowmonkey.kernel.form_state import FormState
from flowmonkey.kernel.ids import follow_up_command_id
from flowmonkey.kernel.state import ExecutionState, PartitionState
from flowmonkey.kernel.trigger_apply import apply_trigger
from flowmonkey.kernel.trigger_state import TriggerState


class _Clones(Protocol):
    def clone(self) -> Self: ...


_E = TypeVar("_E", bound=_Clones)


@dataclass(slots=True)
class Decision:
    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    states: dict[str, ExecutionState] = field(default_factory=dict)
    ignored: str | None = None
    # the jobs this decision touched, as workers see them (kernel/jobs.py: job_view);
    # the processor appends them to the jobs topic with the events
    job_views: list[dict[str, Any]] = field(default_factory=list)
    # the triggers this decision changed (kernel/triggers.py), as ``states`` for executions
    triggers: dict[str, TriggerState] = field(default_factory=dict)
    # the forms this decision changed (kernel/forms.py)
    forms: dict[str, FormState] = field(default_factory=dict)

    @property
    def rejected(self) -> Event | None:
        for event in self.events:
            if event.type == n.COMMAND_REJECTED:
                return event
        return None


class Txn:
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

    def trigger(self, entity_id: str) -> TriggerState | None:
        """A draft of the trigger ``entity_id`` (``trigger:<id>``), None if unknown."""
        return _draft(self.decision.triggers, self.partition.triggers, entity_id)

    def emit_trigger(self, ts: TriggerState | None, entity_id: str, type: str,
                     data: dict[str, Any], tenant_id: str | None = None) -> TriggerState:
        """Emit a trigger's event and apply it to its draft (``ts`` None: the trigger's
        first ``trigger.registered``, whose tenant is ``tenant_id``)."""
        after = apply_trigger(ts, self._entity_event(ts, entity_id, type, data, tenant_id))
        assert after is not None
        self.decision.triggers[entity_id] = after
        return after

    def form(self, entity_id: str) -> FormState | None:
        """A draft of the form ``entity_id`` (``form:<id>``), None if unknown."""
        return _draft(self.decision.forms, self.partition.forms, entity_id)

    def emit_form(self, fs: FormState | None, entity_id: str, type: str,
                  data: dict[str, Any], tenant_id: str | None = None) -> FormState:
        """Emit a form's event and apply it to its draft (``fs`` None: the form's first
        ``form.registered``, whose tenant is ``tenant_id``)."""
        after = apply_form(fs, self._entity_event(fs, entity_id, type, data, tenant_id))
        assert after is not None
        self.decision.forms[entity_id] = after
        return after

    def _entity_event(self, current: TriggerState | FormState | None, entity_id: str,
                      type: str, data: dict[str, Any], tenant_id: str | None) -> Event:
        """The next event of an entity that is not an execution (appended to the
        decision's events)."""
        event = make_event(type, entity_id, (current.seq if current is not None else 0) + 1,
                           self.now, data,
                           tenant_id=current.tenant_id if current is not None else tenant_id,
                           command_id=self.cmd.command_id)
        self.decision.events.append(event)
        return event

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
                  tenant_id: str | None, *, distinct: str | None = None) -> None:
        """A command for another execution (or trigger). ``distinct`` tells apart
        several commands of one type that one decision sends to the same target (the
        fires of event triggers: one per source event)."""
        # hashed, not concatenated: ids stay short down a chain of sub-flows, and the
        # same decision made again gives the same id (its duplicate is recognised)
        cause = self.cmd.command_id if distinct is None else \
            f"{self.cmd.command_id}\0{distinct}"
        self.decision.commands.append(trusted_command(
            type, follow_up_command_id(cause, type, execution_id), execution_id,
            self.now, data, tenant_id))


def visible_execution(tx: Txn) -> ExecutionState | None:
    """The target execution, hidden from commands of another tenant."""
    st = tx.state(tx.cmd.execution_id)
    if st is None:
        return None
    if tx.cmd.tenant_id is not None and st.tenant_id != tx.cmd.tenant_id:
        return None
    return st


def reject_not_found(tx: Txn, what: str = "execution") -> Decision:
    reason = f"{what} {tx.cmd.execution_id!r} not found"
    if tx.cmd.execution_id in tx.partition.forgotten and tx.cmd.tenant_id is None:
        # (not told to a tenant's command: the id keeps no tenant, so it could be
        # another tenant's)
        reason += (" by its processor: it ended over an hour ago (kernel.apply."
                   "RETAIN_ENDED_MS); its record and history are in the projection")
    return tx.reject(n.REJECT_EXECUTION_NOT_FOUND, reason)


def _draft(drafts: dict[str, _E], current: dict[str, _E], entity_id: str) -> _E | None:
    """The decision's draft of an entity, cloned from ``current`` on first use."""
    draft = drafts.get(entity_id)
    if draft is not None:
        return draft
    found = current.get(entity_id)
    if found is None:
        return None
    draft = found.clone()
    drafts[entity_id] = draft
    return draft


__all__ = ["Decision", "Txn", "reject_not_found", "visible_execution"]

