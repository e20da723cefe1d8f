"""What the entities that are not executions share (triggers, forms: ``<kind>:<id>``
on the log, a seq of their own, a state in the partition): folding their events,
and the model of a stored definition, cached.

Like the execution appliers, an entity's appliers never validate and never fail on a
valid event; an event at or below the state's seq changes nothing (redelivered
events are harmless), and the entity comes to be with its first registration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from flowmonkey.events.envelope import Event


class EntityState(Protocol):
    seq: int
    updated_at: int


S = TypeVar("S", bound=EntityState)
M = TypeVar("M", bound=BaseModel)


def apply_entity(state: S | None, event: Event, registered: str,
                 new: Callable[[Event], S],
                 appliers: Mapping[str, Callable[[S, Event], None]]) -> S | None:
    """``state`` after ``event``: a new state (``new``) from the first ``registered``
    event; any other event of an unknown entity changes nothing."""
    if event.seq == 0:
        return state
    if state is None:
        if event.type != registered:
            return None
        state = new(event)
    elif event.seq <= state.seq:
        return state
    applier = appliers.get(event.type)
    if applier is not None:
        applier(state, event)
    state.seq = event.seq
    state.updated_at = event.timestamp_ms
    return state


def replay_entity(events: Iterable[Event],
                  apply: Callable[[S | None, Event], S | None]) -> S | None:
    """One entity's state rebuilt from its events."""
    state: S | None = None
    for event in events:
        state = apply(state, event)
    return state


def definition_json(model: BaseModel) -> dict[str, Any]:
    """The stored (JSON) form of a definition, as its register command carries it."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class ModelCache(Generic[M]):
    """The models of stored definitions, cached per id (a state reads its definition
    at every decision; a changed definition replaces the cached one)."""

    def __init__(self, model_type: type[M], size: int = 4096) -> None:
        self._type = model_type
        self._size = size
        self._models: dict[str, tuple[dict[str, Any], M]] = {}

    def model(self, definition: dict[str, Any]) -> M:
        key = str(definition.get("id"))
        cached = self._models.get(key)
        if cached is not None and cached[0] == definition:
            return cached[1]
        model = self._type.model_validate(definition)
        if len(self._models) >= self._size:
            self._models.clear()
        self._models[key] = (definition, model)
        return model


__all__ = ["ModelCache", "apply_entity", "definition_json", "replay_entity"]
