"""A trigger's state on its partition: what ``kernel/trigger_apply.py`` builds from the
trigger's events and ``kernel/triggers.py`` decides from.

A trigger is an entity on the log like an execution: its commands and events carry
``trigger:<id>`` (``model.trigger.entity_id``) and it has a seq of its own. As with
executions, appliers replace containers instead of changing them in place, so a
``clone()`` is shallow and independent.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any

from flowmonkey.kernel.entities import ModelCache, definition_json
from flowmonkey.model.trigger import Trigger

MAX_ACTIVE_RUNS = 1_000
"""Runs a trigger remembers as started and not ended (for ``overlap: skip``): past
this the oldest are forgotten, so a trigger whose runs never end cannot grow its
state without bound (overlap=skip then sees the remembered ones, which suffices)."""


@dataclass(slots=True)
class TriggerState:
    entity_id: str  # "trigger:<id>"
    trigger_id: str
    definition: dict[str, Any]  # Trigger.model_dump(mode="json", by_alias=True, ...)
    tenant_id: str | None
    enabled: bool
    seq: int = 0
    created_at: int = 0
    updated_at: int = 0
    # schedules: when the next tick is due (None: no timer, e.g. disabled)
    next_fire_at: int | None = None
    last_tick: int | None = None
    # execution ids started and not yet ended, oldest first (bounded: MAX_ACTIVE_RUNS)
    active_runs: tuple[str, ...] = ()
    fired: int = 0
    failed: int = 0
    skipped: int = 0
    last_fired_at: int | None = None

    def clone(self) -> TriggerState:
        return TriggerState(*_all_fields(self))

    def model(self) -> Trigger:
        """The definition as a model (validated when it was registered)."""
        return trigger_model(self.definition)


_all_fields = operator.attrgetter(*(f.name for f in fields(TriggerState)))
_FIELDS = frozenset(f.name for f in fields(TriggerState))

_MODELS = ModelCache(Trigger)


def trigger_model(definition: dict[str, Any]) -> Trigger:
    """The model of a stored definition, cached per trigger id (a schedule reads its
    definition at every tick; a changed definition replaces the cached one)."""
    return _MODELS.model(definition)


def trigger_definition(trigger: Trigger) -> dict[str, Any]:
    """The stored (JSON) form of a definition, as ``trigger.register`` carries it."""
    return definition_json(trigger)


def trigger_to_json(state: TriggerState) -> dict[str, Any]:
    out = {name: getattr(state, name) for name in _FIELDS}
    out["active_runs"] = list(state.active_runs)
    return out


def trigger_from_json(raw: dict[str, Any]) -> TriggerState:
    """The state :func:`trigger_to_json` wrote (unknown keys ignored: a newer writer's
    extra fields do not stop an older reader)."""
    values = {k: v for k, v in raw.items() if k in _FIELDS}
    values["active_runs"] = tuple(values.get("active_runs") or ())
    return TriggerState(**values)


__all__ = ["MAX_ACTIVE_RUNS", "TriggerState", "trigger_definition", "trigger_from_json",
           "trigger_model", "trigger_to_json"]
