"""Test support for the pure kernel: a dict-backed ``KernelEnv``, flow and command
builders, and a ``KernelDriver`` that feeds commands to ``decide`` the way a partition
processor does (decide, then adopt) — with no event loop, log or clock.

Every command the driver sends is also checked against the kernel's two promises:
``decide`` leaves the partition state it was given untouched, and folding ``apply``
over an execution's events gives exactly the state the decision returned.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, Event
from flowmonkey.kernel.apply import adopt, apply_to_partition, replay
from flowmonkey.kernel.decide import Decision, decide
from flowmonkey.kernel.form_apply import replay_form
from flowmonkey.kernel.state import ExecutionState, PartitionState
from flowmonkey.kernel.timers import next_timer
from flowmonkey.kernel.trigger_apply import replay_trigger
from flowmonkey.model.flow import Flow, version_key
from flowmonkey.model.result import StepResult
from flowmonkey.model.trigger import Trigger

T0 = 1_700_000_000_000  # a fixed "now" (ms); tests move time by adding to it

_UNSET: Any = object()


class DictEnv:
    """A ``KernelEnv`` over a fixed set of flows.

    Like the engine's registry: an exact version when asked, otherwise the highest
    published version.
    """

    def __init__(self, flows: Iterable[Flow] = (), triggers: Iterable[Trigger] = ()) -> None:
        self.flows: dict[str, dict[str, Flow]] = {}
        for flow in flows:
            self.flows.setdefault(flow.id, {})[flow.version] = flow
        self.triggers: list[Trigger] = list(triggers)

    def event_triggers(self, flow_id: str, event_type: str) -> list[Trigger]:
        return [t for t in self.triggers if t.event is not None
                and (t.event.flow_id, t.event.type) == (flow_id, event_type)]

    def flow(self, flow_id: str, version: str | None = None) -> Flow | None:
        versions = self.flows.get(flow_id)
        if not versions:
            return None
        if version is not None:
            return versions.get(version)
        published = [f for f in versions.values() if f.effective_status == "published"]
        return max(published, key=lambda f: version_key(f.version)) if published else None


# --------------------------------------------------------------------------- flows


def step(
    id: str,
    type: str = "task",
    *,
    on_success: str | None = None,
    on_failure: str | None = None,
    on_resume: str | None = _UNSET,
    output_key: str | None = None,
    retry: dict[str, Any] | None = None,
    input: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A step as the original's JSON shape would give it (``on_resume`` only when given)."""
    transitions: dict[str, Any] = {"on_success": on_success, "on_failure": on_failure}
    if on_resume is not _UNSET:
        transitions["on_resume"] = on_resume
    raw: dict[str, Any] = {"id": id, "type": type, "transitions": transitions}
    if output_key is not None:
        raw["output_key"] = output_key
    if retry is not None:
        raw["retry"] = retry
    if input is not None:
        raw["input"] = input
    if config is not None:
        raw["config"] = config
    return raw


def make_flow(
    id: str,
    steps: list[dict[str, Any]],
    *,
    version: str = "1",
    initial: str | None = None,
    status: str | None = None,
    pipes: list[dict[str, Any]] | None = None,
) -> Flow:
    return Flow.model_validate({
        "id": id,
        "version": version,
        "initial_step_id": initial or steps[0]["id"],
        "steps": {s["id"]: s for s in steps},
        "status": status,
        "pipes": pipes or [],
    })


def linear_flow(id: str = "linear", length: int = 2, **step_options: Any) -> Flow:
    """``s1 -> s2 -> … -> sN``; each step stores its output at ``out<i>``."""
    ids = [f"s{i}" for i in range(1, length + 1)]
    return make_flow(id, [
        step(sid, on_success=ids[i + 1] if i + 1 < length else None, output_key=f"out{i + 1}",
             **step_options)
        for i, sid in enumerate(ids)
    ])


# --------------------------------------------------------------------------- commands

_ids = itertools.count(1)


def reset_command_ids() -> None:
    """Restart the generated command ids (scripts that must replay identically call it)."""
    global _ids
    _ids = itertools.count(1)


def _command(type: str, execution_id: str, at: int, data: dict[str, Any],
             tenant_id: str | None, command_id: str | None) -> Command:
    return Command(
        type=type,
        command_id=command_id or f"{type}#{next(_ids)}",
        execution_id=execution_id,
        timestamp_ms=at,
        tenant_id=tenant_id,
        data=data,
    )


def start_cmd(
    execution_id: str,
    flow_id: str,
    *,
    at: int = T0,
    context: Any = None,
    tenant_id: str | None = None,
    command_id: str | None = None,
    **data: Any,
) -> Command:
    """``execution.start``; extra keyword arguments go into the command data as given."""
    payload: dict[str, Any] = {"flow_id": flow_id, "context": {} if context is None else context,
                               **data}
    return _command(n.CMD_START, execution_id, at, payload, tenant_id, command_id)


def result_cmd(
    execution_id: str,
    attempt_id: str | None,
    result: StepResult | None = None,
    *,
    at: int,
    command_id: str | None = None,
    **data: Any,
) -> Command:
    """``step.result`` as the runner sends it (``raised=…`` / ``timed_out=True`` instead
    of a result for exceptions and timeouts)."""
    payload: dict[str, Any] = {"attempt_id": attempt_id, **data}
    if result is not None:
        payload["result"] = result
    return _command(n.CMD_STEP_RESULT, execution_id, at, payload, None,
                    command_id or f"result:{attempt_id}:{next(_ids)}")


def timer_cmd(execution_id: str, due: int, kind: str, *, at: int | None = None,
              command_id: str | None = None) -> Command:
    return _command(n.CMD_TIMER, execution_id, due if at is None else at,
                    {"due_at": due, "kind": kind}, None, command_id)


def resume_cmd(execution_id: str, token: Any, data: Any = None, *, at: int,
               tenant_id: str | None = None, command_id: str | None = None) -> Command:
    return _command(n.CMD_RESUME, execution_id, at, {"token": token, "data": data}, tenant_id,
                    command_id)


def cancel_cmd(execution_id: str, *, at: int, source: str | None = "user",
               reason: str | None = None, tenant_id: str | None = None,
               command_id: str | None = None) -> Command:
    return _command(n.CMD_CANCEL, execution_id, at, {"source": source, "reason": reason},
                    tenant_id, command_id)


def revoke_cmd(execution_id: str, token: Any, *, at: int, reason: str | None = None,
               tenant_id: str | None = None, command_id: str | None = None) -> Command:
    return _command(n.CMD_REVOKE_TOKEN, execution_id, at, {"token": token, "reason": reason},
                    tenant_id, command_id)


def child_finished_cmd(
    parent_id: str,
    child_id: str,
    status: str,
    *,
    at: int,
    context: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    flow_id: str | None = None,
    command_id: str | None = None,
) -> Command:
    return _command(n.CMD_CHILD_FINISHED, parent_id, at, {
        "child_execution_id": child_id, "flow_id": flow_id, "status": status,
        "context": context, "error": error,
    }, None, command_id)


# --------------------------------------------------------------------------- the driver


def types(events: Iterable[Event]) -> list[str]:
    return [e.type for e in events]


def state_fields(state: ExecutionState) -> dict[str, Any]:
    return dataclasses.asdict(state)


class KernelDriver:
    """Feeds commands to ``decide`` and adopts the decisions, as a processor would."""

    def __init__(self, env: DictEnv, *, check: bool = True) -> None:
        self.env = env
        self.partition = PartitionState()
        self.events: list[Event] = []  # every event adopted, in order (seq-0 ones too)
        self.follow_ups: list[Command] = []
        self.check = check

    # -- sending

    def send(self, cmd: Command) -> Decision:
        before = copy.deepcopy(self.partition) if self.check else None
        decision = decide(self.partition, cmd, self.env)
        if before is not None:
            assert self.partition == before, "decide mutated the partition state it was given"
            self._check_replay(decision)
        if decision.ignored is None:
            adopt(self.partition, decision.events, decision.states, decision.triggers,
                  decision.forms)
            self.events.extend(decision.events)
            self.follow_ups.extend(decision.commands)
        return decision

    def _check_replay(self, decision: Decision) -> None:
        for execution_id, drafted in decision.states.items():
            history = self.history(execution_id) + [
                e for e in decision.events if e.execution_id == execution_id and e.seq > 0]
            rebuilt = replay(history)
            assert rebuilt is not None
            # the partition keeps ended executions retired; compare like with like
            if rebuilt.is_terminal:
                rebuilt, drafted = rebuilt.retired(), drafted.retired()
            assert state_fields(rebuilt) == state_fields(drafted), (
                f"replaying {execution_id}'s events does not give the decision's state")
        rebuilders: list[tuple[dict[str, Any], Callable[[list[Event]], Any]]] = [
            (decision.triggers, replay_trigger), (decision.forms, replay_form)]
        for entities, rebuild in rebuilders:
            for entity_id, entity in entities.items():
                events = self.history(entity_id) + [
                    e for e in decision.events if e.execution_id == entity_id and e.seq > 0]
                assert rebuild(events) == entity, (
                    f"replaying {entity_id}'s events does not give the decision's state")

    def inject(self, event: Event) -> None:
        """Append an event ``decide`` did not produce, to build states it cannot reach."""
        apply_to_partition(self.partition, event)
        self.events.append(event)

    def deliver(self) -> list[Decision]:
        """Send the follow-up commands decided so far (and any they cause), in order."""
        decisions: list[Decision] = []
        while self.follow_ups:
            decisions.append(self.send(self.follow_ups.pop(0)))
        return decisions

    # -- reading

    def state(self, execution_id: str) -> ExecutionState:
        """The execution's full state: its events folded (the partition keeps an ended
        execution retired, without its context and history)."""
        if execution_id not in self.partition.executions:
            raise KeyError(execution_id)
        state = replay(self.history(execution_id))
        assert state is not None
        return state

    def history(self, execution_id: str) -> list[Event]:
        return [e for e in self.events if e.execution_id == execution_id and e.seq > 0]

    # -- shortcuts for the commands tests send most

    def start(self, execution_id: str, flow_id: str, *, at: int = T0, **kwargs: Any) -> Decision:
        return self.send(start_cmd(execution_id, flow_id, at=at, **kwargs))

    def result(self, execution_id: str, result: StepResult | None = None, *, at: int,
               **data: Any) -> Decision:
        """The result of the attempt in flight."""
        return self.send(result_cmd(execution_id, self.state(execution_id).attempt_id, result,
                                    at=at, **data))

    def fire(self, execution_id: str, *, at: int | None = None) -> Decision:
        """Fire the execution's next timer (at its due time unless ``at`` is given)."""
        due = next_timer(self.state(execution_id))
        assert due is not None, f"{execution_id} has no timer"
        return self.send(timer_cmd(execution_id, due[0], due[1], at=at,
                                   command_id=f"timer:{execution_id}:{due[1]}:{due[0]}"))
