"""Triggers: what starts executions without code (webhooks, schedules, events, topics).

A trigger is an entity on the log like an execution (``trigger:<id>``, a seq of its
own, state in ``PartitionState.triggers``). Its commands are decided here:

* ``trigger.register``: a new or changed definition -> ``trigger.registered``; an
  identical one is ignored. Registering never changes ``enabled`` of a known trigger
  (a pause survives redeploys). A schedule's next tick is computed from the command's
  time (kept when the cron and timezone did not change).
* ``trigger.enable`` / ``trigger.disable`` -> ``trigger.enabled`` / ``trigger.disabled``
  (``changed: false`` and no change of state when it already was: every such command
  gets its answer, and the audit trail records who asked). Enabling a schedule
  computes its next tick from now: ticks missed while paused are not caught up.
* ``trigger.fire``: an arrival -> ``trigger.fired`` and a follow-up ``execution.start``
  (or ``trigger.failed``: a failure the sender found, the trigger disabled, a mapping
  error). The execution id is derived from the trigger and the arrival's source key, so
  a retried delivery maps to the same execution, whose second start is refused
  ``EXECUTION_EXISTS``: one execution per source.
* a ``trigger_tick`` timer: a schedule's due ticks (catch-up and overlap policies).
* ``trigger.run_ended``: a run the trigger started ended (the kernel sends it).

And, for every decision: events of executions that event triggers listen to become
``trigger.fire`` follow-ups (:func:`add_event_trigger_fires`), in the same transaction
as the event, so once per source event.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.kernel import cron
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.decision import Decision, Txn
from flowmonkey.kernel.inputs import InputError, resolve_input
from flowmonkey.kernel.paths import MISSING, get_path
from flowmonkey.kernel.registering import registered_model
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.kernel.trigger_checks import describe, trigger_problems
from flowmonkey.kernel.trigger_state import TriggerState, trigger_definition
from flowmonkey.model.trigger import Condition, ScheduleSettings, Trigger, entity_id

REJECT_TRIGGER_NOT_FOUND = "TRIGGER_NOT_FOUND"
# trigger.failed codes
TRIGGER_DISABLED = "TRIGGER_DISABLED"
MAPPING_ERROR = "MAPPING_ERROR"
TRIGGER_DEPTH_EXCEEDED = "TRIGGER_DEPTH_EXCEEDED"

TRIGGER_TICK = "trigger_tick"
"""The timer kind of a schedule's next tick (on the trigger entity)."""
CATCH_UP_GRACE_MS = 60_000
"""``catch_up: skip``: the latest due tick still fires when it is at most this late, and
at most half the time to the tick after it (a processor restart, a rebalance); later,
it is missed like the others."""
MAX_TRIGGER_DEPTH = 8
"""Event triggers chained through flows (A's end starts B, B's end starts A, ...) stop
at this many links: the next fire fails with ``TRIGGER_DEPTH_EXCEEDED``."""
EXECUTION_ID_PREFIX = "trg-"
_ID_HEX = 24


def triggered_execution_id(trigger_id: str, source_kind: str, source_key: str) -> str:
    """The execution a trigger starts for a source: the same for a retried delivery."""
    raw = f"{trigger_id}\0{source_kind}\0{source_key}".encode("utf-8", "surrogatepass")
    return EXECUTION_ID_PREFIX + blake2b(raw, digest_size=_ID_HEX // 2).hexdigest()


def schedule_idempotency_key(trigger_id: str, tick_ms: int) -> str:
    """A schedule's run's idempotency key (without a selector of its own): the schedule
    and the tick."""
    return f"trigger:{trigger_id}@{cron.to_iso(tick_ms)}"


# --------------------------------------------------------------------------- entry


def decide_trigger_command(tx: Txn) -> Decision:
    return _DECIDERS[tx.cmd.type](tx)


def _visible(tx: Txn) -> TriggerState | None:
    """The target trigger, hidden from commands of another tenant."""
    ts = tx.trigger(tx.cmd.execution_id)
    if ts is None:
        return None
    if tx.cmd.tenant_id is not None and ts.tenant_id != tx.cmd.tenant_id:
        return None
    return ts


def _not_found(tx: Txn) -> Decision:
    return tx.reject(REJECT_TRIGGER_NOT_FOUND, f"trigger {_trigger_id(tx)!r} is not registered")


def _trigger_id(tx: Txn) -> str:
    return tx.cmd.execution_id.partition(":")[2]


def _register(tx: Txn) -> Decision:
    d = tx.cmd.data
    model = registered_model(tx, Trigger, "trigger", trigger_problems, describe)
    if isinstance(model, Decision):
        return model
    definition = trigger_definition(model)
    ts = tx.trigger(tx.cmd.execution_id)
    if ts is not None and ts.definition == definition:
        return tx.ignore("identical trigger definition")
    enabled = ts.enabled if ts is not None else model.enabled
    next_fire_at: int | None = None
    if model.schedule is not None and enabled:
        next_fire_at = _kept_next(ts, model.schedule)
        if next_fire_at is None:
            next_fire_at = cron.next_after(model.schedule.cron, model.schedule.timezone,
                                           tx.now)
    tx.emit_trigger(ts, tx.cmd.execution_id, n.TRIGGER_REGISTERED, {
        "definition": definition, "by": d.get("by"), "changed": ts is not None,
        "next_fire_at": next_fire_at}, tenant_id=model.tenant_id)
    return tx.decision


def _kept_next(ts: TriggerState | None, schedule: ScheduleSettings) -> int | None:
    """A changed definition keeps its schedule's next tick if the cron and timezone are
    the same (ticks due during an outage are still caught up)."""
    if ts is None or ts.next_fire_at is None:
        return None
    before = ts.definition.get("schedule") or {}
    if before.get("cron") == schedule.cron and before.get("timezone") == schedule.timezone:
        return ts.next_fire_at
    return None


def _enable(tx: Txn) -> Decision:
    ts = _visible(tx)
    if ts is None:
        return _not_found(tx)
    d = tx.cmd.data
    next_fire_at = ts.next_fire_at
    if not ts.enabled:
        schedule = ts.model().schedule
        if schedule is not None:
            next_fire_at = cron.next_after(schedule.cron, schedule.timezone, tx.now)
    tx.emit_trigger(ts, ts.entity_id, n.TRIGGER_ENABLED, {
        "by": d.get("by"), "reason": d.get("reason"), "changed": not ts.enabled,
        "next_fire_at": next_fire_at})
    return tx.decision


def _disable(tx: Txn) -> Decision:
    ts = _visible(tx)
    if ts is None:
        return _not_found(tx)
    d = tx.cmd.data
    tx.emit_trigger(ts, ts.entity_id, n.TRIGGER_DISABLED, {
        "by": d.get("by"), "reason": d.get("reason"), "changed": ts.enabled})
    return tx.decision


def _fire(tx: Txn) -> Decision:
    ts = _visible(tx)
    if ts is None:
        return _not_found(tx)
    d = tx.cmd.data
    source = {"kind": d["source"]["kind"], "key": d["source"]["key"]}
    failure = d.get("failure")
    if failure is not None:
        _failed(tx, ts, str(failure["code"])[:100], str(failure["message"])[:1000], source)
        return tx.decision
    fire(tx, ts, ts.model(), source, d.get("arrival") or {}, {})
    return tx.decision


def _run_ended(tx: Txn) -> Decision:
    ts = tx.trigger(tx.cmd.execution_id)
    if ts is None:
        return tx.ignore("run ended for an unknown trigger")
    d = tx.cmd.data
    tx.emit_trigger(ts, ts.entity_id, n.TRIGGER_RUN_ENDED,
                    {"execution_id": d["execution_id"], "status": d["status"]})
    return tx.decision


# --------------------------------------------------------------------------- firing


def fire(tx: Txn, ts: TriggerState, model: Trigger, source: dict[str, str],
         arrival: dict[str, Any], extra: dict[str, Any]) -> None:
    """Fire ``ts`` for one arrival: ``trigger.fired`` and the start of its execution,
    or ``trigger.failed`` (disabled, mapping error). ``extra`` goes into the event
    (a schedule's tick and next tick)."""
    if not ts.enabled:
        _failed(tx, ts, TRIGGER_DISABLED, f"trigger {model.id!r} is disabled", source, extra)
        return
    depth = 0
    if source["kind"] == "event":
        depth = _source_depth(arrival) + 1
        if depth > MAX_TRIGGER_DEPTH:
            _failed(tx, ts, TRIGGER_DEPTH_EXCEEDED, (
                f"trigger {model.id!r}: the source execution was itself started by a chain "
                f"of {depth - 1} event triggers; at most {MAX_TRIGGER_DEPTH} are followed"),
                source, extra)
            return
    try:
        context = _context(model, arrival)
        key = _idempotency_key(model, arrival)
    except _MappingError as exc:
        _failed(tx, ts, MAPPING_ERROR, f"trigger {model.id!r}: {exc}", source, extra)
        return
    if key is None and extra.get("tick") is not None:
        key = schedule_idempotency_key(model.id, extra["tick"])
    execution_id = triggered_execution_id(model.id, source["kind"], source["key"])
    tx.emit_trigger(ts, ts.entity_id, n.TRIGGER_FIRED, {
        "execution_id": execution_id, "flow_id": model.flow_id,
        "flow_version": model.flow_version, "source": source, "idempotency_key": key,
        **extra})
    mark: dict[str, Any] = {"id": model.id, "kind": model.kind, "source": source["key"]}
    if depth:
        mark["depth"] = depth
    start: dict[str, Any] = {"flow_id": model.flow_id, "context": context,
                             "metadata": {"trigger": mark}}
    if model.flow_version is not None:
        start["flow_version"] = model.flow_version
    if key is not None:
        start["idempotency_key"] = key
    tx.follow_up(n.CMD_START, execution_id, start, ts.tenant_id)


def _failed(tx: Txn, ts: TriggerState, code: str, message: str, source: dict[str, str],
            extra: dict[str, Any] | None = None) -> None:
    tx.emit_trigger(ts, ts.entity_id, n.TRIGGER_FAILED, {
        "code": code, "message": message, "source": source, **(extra or {})})


class _MappingError(Exception):
    pass


def _context(model: Trigger, arrival: dict[str, Any]) -> dict[str, Any]:
    if model.context is not None:
        value = _resolved(model.context, arrival, "context")
    elif model.kind == "webhook":
        value = arrival.get("body")
    elif model.kind == "event":
        value = (arrival.get("execution") or {}).get("context")
    elif model.kind == "topic":
        value = arrival.get("value")
    else:
        value = arrival
    try:
        return lim.started_context(value)
    except lim.LimitViolation as violation:
        raise _MappingError(f"context: {violation.message}") from None


def _idempotency_key(model: Trigger, arrival: dict[str, Any]) -> str | None:
    if model.idempotency_key is None:
        return None
    value = _resolved(model.idempotency_key, arrival, "idempotencyKey")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _MappingError(f"idempotencyKey: selects {type(value).__name__}, not a text "
                            "or a number")
    key = str(value)
    if not key or len(key) > 512 or "\x00" in key:
        raise _MappingError("idempotencyKey: must be 1 to 512 characters, without NUL")
    return key


def _resolved(selector: Any, arrival: dict[str, Any], field: str) -> Any:
    try:
        return resolve_input(selector, arrival)
    except (InputError, TypeError, ValueError) as exc:
        raise _MappingError(f"{field}: {exc}") from None


def _source_depth(arrival: dict[str, Any]) -> int:
    metadata = (arrival.get("execution") or {}).get("metadata") or {}
    mark = metadata.get("trigger") if isinstance(metadata, dict) else None
    depth = mark.get("depth") if isinstance(mark, dict) else None
    return depth if type(depth) is int and depth > 0 else 0


# --------------------------------------------------------------------------- schedules


def trigger_timers_for(ts: TriggerState) -> list[tuple[int, str]]:
    """``(due_ms, kind)`` of every timer the trigger has now (a schedule's next tick)."""
    if not ts.enabled or ts.next_fire_at is None:
        return []
    return [(ts.next_fire_at, TRIGGER_TICK)]


def decide_trigger_timer(tx: Txn) -> Decision:
    """A schedule's tick is due: the ticks due since ``next_fire_at`` fire or are skipped
    by the catch-up and overlap policies, and the next tick is set."""
    ts = tx.trigger(tx.cmd.execution_id)
    if ts is None:
        return tx.ignore("timer for unknown trigger")
    due, kind = int(tx.cmd.data["due_at"]), tx.cmd.data["kind"]
    if (due, kind) not in trigger_timers_for(ts) or tx.now < due:
        return tx.ignore("stale timer")
    model = ts.model()
    schedule = model.schedule
    assert schedule is not None
    assert ts.next_fire_at is not None
    first = ts.next_fire_at
    policy = schedule.catch_up
    wanted = schedule.catch_up_limit + 1 if policy == "all" else 2
    due_ticks = cron.latest_ticks(schedule.cron, schedule.timezone, first - 1, tx.now, wanted)
    latest = due_ticks[-1] if due_ticks else first
    next_at = cron.next_after(schedule.cron, schedule.timezone, tx.now)
    if policy == "all":
        firing = due_ticks[-schedule.catch_up_limit:]
    elif policy == "once" or tx.now - latest <= min(CATCH_UP_GRACE_MS,
                                                     (next_at - latest) // 2):
        firing = due_ticks[-1:]
    else:
        firing = []
    missed_to = _before(due_ticks, firing, latest)
    plan: list[tuple[str, int]] = []
    if missed_to is not None:
        plan.append(("missed", missed_to))
    plan += [("tick", tick) for tick in firing]
    for index, (what, tick) in enumerate(plan):
        extra: dict[str, Any] = {"tick": tick}
        if index == len(plan) - 1:
            extra["next_fire_at"] = next_at
        if what == "missed":
            tx.emit_trigger(ts, ts.entity_id, n.TRIGGER_SKIPPED,
                            {"reason": "catch_up", "since": first, **extra})
        elif schedule.overlap == "skip" and ts.active_runs:
            tx.emit_trigger(ts, ts.entity_id, n.TRIGGER_SKIPPED,
                            {"reason": "overlap", "active": ts.active_runs[-1], **extra})
        else:
            fire(tx, ts, model, {"kind": "schedule", "key": str(tick)},
                 _schedule_arrival(model, schedule, tick), extra)
    return tx.decision


def _before(due_ticks: list[int], firing: list[int], latest: int) -> int | None:
    """The last of the due ticks that do not fire (they are skipped as one), if any."""
    if not firing:
        return latest
    earlier = [t for t in due_ticks if t < firing[0]]
    return earlier[-1] if earlier else None


def _schedule_arrival(model: Trigger, schedule: ScheduleSettings, tick: int) -> dict[str, Any]:
    return {"trigger": model.id, "tick": cron.to_iso(tick),
            "tickLocal": cron.to_iso(tick, schedule.timezone),
            "timezone": schedule.timezone, "scheduledAtMs": tick}


# --------------------------------------------------------------------------- events


def add_event_trigger_fires(tx: Txn, decision: Decision) -> None:
    """A ``trigger.fire`` to each event trigger that listens to an event this decision
    emits for an execution (its flow and the event's type) and whose conditions hold."""
    lookup = tx.env.event_triggers
    for event in list(decision.events):
        if event.seq == 0:
            continue
        st = decision.states.get(event.execution_id)
        if st is None:
            continue
        triggers = lookup(st.flow_id, event.type)
        if not triggers:
            continue
        arrival = _event_arrival(event, st)
        for trigger in triggers:
            if not all(holds(c, arrival) for c in
                       (trigger.event.when if trigger.event is not None else ())):
                continue
            key = f"{event.execution_id}:{event.seq}"
            tx.follow_up(n.CMD_TRIGGER_FIRE, entity_id(trigger.id), {
                "source": {"kind": "event", "key": key}, "arrival": arrival,
            }, trigger.tenant_id, distinct=key)


def _event_arrival(event: Event, st: ExecutionState) -> dict[str, Any]:
    arrival: dict[str, Any] = private_copy({
        "event": {"type": event.type, "executionId": event.execution_id,
                  "flowId": st.flow_id, "seq": event.seq, "data": event.data},
        "execution": {"id": st.id, "flowId": st.flow_id, "context": st.context,
                      "metadata": st.metadata}})
    return arrival


def holds(condition: Condition, document: dict[str, Any]) -> bool:
    """Whether ``condition`` holds on ``document`` (no type coercion: an order between
    a number and a text, or with null, is false)."""
    value = get_path(document, condition.path)
    op, want = condition.operator, condition.value
    if op == "exists":
        return (value is not MISSING) == (want is not False)
    if value is MISSING:
        return op == "neq"
    if op == "eq":
        return _same(value, want)
    if op == "neq":
        return not _same(value, want)
    if op == "contains":
        if isinstance(value, str):
            return isinstance(want, str) and want in value
        if isinstance(value, list):
            return any(_same(item, want) for item in value)
        if isinstance(value, dict):
            return isinstance(want, str) and want in value
        return False
    if not _comparable(value, want):
        return False
    if op == "gt":
        return bool(value > want)
    if op == "gte":
        return bool(value >= want)
    if op == "lt":
        return bool(value < want)
    return bool(value <= want)  # lte


def _same(a: Any, b: Any) -> bool:
    # (True == 1 in Python: not here)
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) \
        else a == b


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(a: Any, b: Any) -> bool:
    return (_number(a) and _number(b)) or (isinstance(a, str) and isinstance(b, str))


# --------------------------------------------------------------------------- runs


def report_run_end(tx: Txn, st: ExecutionState) -> None:
    """An execution a trigger started ended: tell its trigger (for ``overlap: skip``)."""
    mark = (st.metadata or {}).get("trigger")
    if not isinstance(mark, dict) or not isinstance(mark.get("id"), str):
        return
    tx.follow_up(n.CMD_TRIGGER_RUN_ENDED, entity_id(mark["id"]),
                 {"execution_id": st.id, "status": st.status.value}, st.tenant_id)


_DECIDERS = {
    n.CMD_TRIGGER_REGISTER: _register,
    n.CMD_TRIGGER_ENABLE: _enable,
    n.CMD_TRIGGER_DISABLE: _disable,
    n.CMD_TRIGGER_FIRE: _fire,
    n.CMD_TRIGGER_RUN_ENDED: _run_ended,
}

__all__ = ["CATCH_UP_GRACE_MS", "MAPPING_ERROR", "MAX_TRIGGER_DEPTH", "REJECT_TRIGGER_NOT_FOUND",
           "TRIGGER_DISABLED", "TRIGGER_TICK", "add_event_trigger_fires",
           "decide_trigger_command", "decide_trigger_timer", "fire", "holds",
           "report_run_end", "schedule_idempotency_key", "trigger_timers_for",
           "triggered_execution_id"]
