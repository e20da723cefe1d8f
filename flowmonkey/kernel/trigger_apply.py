"""Appliers of the trigger events: the only code that changes a ``TriggerState``.

One small function per event; like the execution appliers they never validate, never
fail on a valid event, and replace containers instead of changing them in place. An
event at or below the state's seq changes nothing (redelivered events are harmless).
"""

from __future__ import annotations

from collections.abc import Callable

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.entities import apply_entity, replay_entity
from flowmonkey.kernel.trigger_state import MAX_ACTIVE_RUNS, TriggerState
from flowmonkey.model.trigger import ENTITY_PREFIX

TriggerApplier = Callable[[TriggerState, Event], None]


def is_trigger_entity(execution_id: str) -> bool:
    return execution_id.startswith(ENTITY_PREFIX)


def _registered(s: TriggerState, e: Event) -> None:
    definition = private_copy(e.data["definition"])
    s.definition = definition
    s.tenant_id = definition.get("tenantId")
    s.next_fire_at = e.data.get("next_fire_at")


def _enabled(s: TriggerState, e: Event) -> None:
    s.enabled = True
    s.next_fire_at = e.data.get("next_fire_at")


def _disabled(s: TriggerState, e: Event) -> None:
    s.enabled = False
    s.next_fire_at = None


def _ticked(s: TriggerState, e: Event) -> None:
    """What every outcome of a schedule's tick carries: the tick, and on the last event
    of the tick's decision the next time the schedule is due."""
    tick = e.data.get("tick")
    if tick is not None:
        s.last_tick = tick if s.last_tick is None else max(s.last_tick, tick)
    if "next_fire_at" in e.data:
        s.next_fire_at = e.data["next_fire_at"]


def _fired(s: TriggerState, e: Event) -> None:
    s.fired += 1
    s.last_fired_at = e.timestamp_ms
    runs = (*s.active_runs, e.data["execution_id"])
    s.active_runs = runs[-MAX_ACTIVE_RUNS:]
    _ticked(s, e)


def _skipped(s: TriggerState, e: Event) -> None:
    s.skipped += 1
    _ticked(s, e)


def _failed(s: TriggerState, e: Event) -> None:
    s.failed += 1
    _ticked(s, e)


def _run_ended(s: TriggerState, e: Event) -> None:
    ended = e.data["execution_id"]
    if ended in s.active_runs:
        s.active_runs = tuple(r for r in s.active_runs if r != ended)


TRIGGER_APPLIERS: dict[str, TriggerApplier] = {
    n.TRIGGER_REGISTERED: _registered,
    n.TRIGGER_ENABLED: _enabled,
    n.TRIGGER_DISABLED: _disabled,
    n.TRIGGER_FIRED: _fired,
    n.TRIGGER_SKIPPED: _skipped,
    n.TRIGGER_FAILED: _failed,
    n.TRIGGER_RUN_ENDED: _run_ended,
}


def _new(event: Event) -> TriggerState:
    definition = event.data["definition"]
    return TriggerState(
        entity_id=event.execution_id, trigger_id=str(definition.get("id")), definition={},
        tenant_id=None, enabled=bool(definition.get("enabled", True)),
        created_at=event.timestamp_ms)


def apply_trigger(state: TriggerState | None, event: Event) -> TriggerState | None:
    """The trigger's state after ``event`` (a trigger comes to be with its first
    ``trigger.registered``; any other event for an unknown trigger changes nothing)."""
    return apply_entity(state, event, n.TRIGGER_REGISTERED, _new, TRIGGER_APPLIERS)


def replay_trigger(events: list[Event]) -> TriggerState | None:
    """One trigger's state rebuilt from its events."""
    return replay_entity(events, apply_trigger)


__all__ = ["TRIGGER_APPLIERS", "apply_trigger", "is_trigger_entity", "replay_trigger"]
