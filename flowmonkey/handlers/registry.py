"""Flow, handler, trigger and form registries: what the kernel may consult (``KernelEnv``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from flowmonkey.errors import FlowValidationError, HandlerNotFoundError, RegistrationError
from flowmonkey.handlers.base import StepHandler
from flowmonkey.model.flow import Flow, version_key
from flowmonkey.model.form import Form
from flowmonkey.model.tables import TableDef
from flowmonkey.model.trigger import Trigger

Notify = Callable[[str, dict[str, Any]], None]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


D = TypeVar("D", bound=_Identified)


class HandlerRegistry:
    def __init__(self, notify: Notify | None = None) -> None:
        self._handlers: dict[str, StepHandler] = {}
        self._notify = notify

    def register(self, handler: StepHandler) -> None:
        meta = getattr(handler, "metadata", None)
        if meta is None or not callable(getattr(handler, "execute", None)):
            raise RegistrationError(
                f"{handler!r} is not a handler: decorate an async function with "
                "@handler('type') or subclass flowmonkey.Handler")
        if meta.type in self._handlers:
            raise RegistrationError(f"handler {meta.type!r} is already registered")
        self._handlers[meta.type] = handler
        if self._notify:
            self._notify("handler.registered", {"handler_type": meta.type,
                                                "name": meta.name or meta.type,
                                                "category": meta.category})

    def unregister(self, handler_type: str) -> bool:
        removed = self._handlers.pop(handler_type, None) is not None
        if removed and self._notify:
            self._notify("handler.unregistered", {"handler_type": handler_type})
        return removed

    def get(self, handler_type: str) -> StepHandler:
        try:
            return self._handlers[handler_type]
        except KeyError:
            raise HandlerNotFoundError(f"no handler registered for type {handler_type!r}")

    def find(self, handler_type: str) -> StepHandler | None:
        return self._handlers.get(handler_type)

    def __contains__(self, handler_type: object) -> bool:
        return handler_type in self._handlers

    def types(self) -> list[str]:
        return sorted(self._handlers)

    def all(self) -> list[StepHandler]:
        return list(self._handlers.values())


class FlowRegistry:
    """Immutable flow versions; without a version the highest published one is used."""

    def __init__(self, notify: Notify | None = None) -> None:
        self._flows: dict[str, dict[str, Flow]] = {}
        self._notify = notify

    def register(self, flow: Flow, *, handler_types: Iterable[str] | None = None,
                 tables: dict[str, TableDef] | None = None,
                 more_problems: Iterable[tuple[str | None, str, str]] = (),
                 handler_hint: str | None = None) -> Flow:
        existing = self._flows.get(flow.id, {}).get(flow.version)
        if existing is not None:
            raise RegistrationError(
                f"flow {flow.ref} is already registered; flows are immutable, register a "
                "new version instead")
        if handler_hint is None:
            flow.check(handler_types, tables, more_problems)
        else:
            flow.check(handler_types, tables, more_problems, handler_hint=handler_hint)
        self._flows.setdefault(flow.id, {})[flow.version] = flow
        if self._notify:
            self._notify("flow.registered", {"flow_id": flow.id, "version": flow.version})
        return flow

    def adopt(self, flow: Flow) -> None:
        """Take a flow read back from the flows topic: identical re-registration is fine."""
        existing = self._flows.get(flow.id, {}).get(flow.version)
        if existing is None:
            self._flows.setdefault(flow.id, {})[flow.version] = flow
        elif existing != flow:
            raise FlowValidationError(
                f"flow {flow.ref} in the log differs from the definition given to the engine; "
                "flows are immutable: give the changed flow a new version",
                flow_id=flow.id, field="version")

    def get(self, flow_id: str, version: str | None = None, *,
            include_unpublished: bool = False) -> Flow | None:
        versions = self._flows.get(flow_id)
        if not versions:
            return None
        if version is not None:
            return versions.get(version)
        candidates = [f for f in versions.values()
                      if include_unpublished or f.effective_status == "published"]
        if not candidates:
            return None
        return max(candidates, key=lambda f: version_key(f.version))

    def versions(self, flow_id: str) -> list[str]:
        return sorted(self._flows.get(flow_id, {}), key=version_key, reverse=True)

    def all(self) -> list[Flow]:
        return [f for versions in self._flows.values() for f in versions.values()]

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._flows


class Definitions(Generic[D]):
    """Definitions of log entities this process knows by id (triggers, forms: given
    to the engine, or read from their topic). Unlike flows, a definition may change:
    the latest of an id replaces the one before (its entity's partition decides
    whether that is a change)."""

    def __init__(self) -> None:
        self._items: dict[str, D] = {}

    def adopt(self, item: D) -> None:
        self._items[item.id] = item
        self._changed()

    def remove(self, item_id: str) -> bool:
        removed = self._items.pop(item_id, None) is not None
        if removed:
            self._changed()
        return removed

    def _changed(self) -> None:
        """What a subclass keeps in step with its definitions."""

    def get(self, item_id: str) -> D | None:
        return self._items.get(item_id)

    def all(self) -> list[D]:
        return list(self._items.values())

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)


class TriggerRegistry(Definitions[Trigger]):
    """The trigger definitions this process knows, with an index of the event
    triggers by (flow, event type)."""

    def __init__(self) -> None:
        super().__init__()
        self._by_event: dict[tuple[str, str], tuple[Trigger, ...]] = {}

    def _changed(self) -> None:
        by_event: dict[tuple[str, str], list[Trigger]] = {}
        for trigger in self._items.values():
            if trigger.event is not None:
                by_event.setdefault((trigger.event.flow_id, trigger.event.type),
                                    []).append(trigger)
        self._by_event = {key: tuple(found) for key, found in by_event.items()}

    def event_triggers(self, flow_id: str, event_type: str) -> Sequence[Trigger]:
        if not self._by_event:
            return ()
        return self._by_event.get((flow_id, event_type), ())


class FormRegistry(Definitions[Form]):
    """The form definitions this process knows (what the submission endpoint
    sanitises and validates with; the form's partition has its own copy)."""


class EngineEnv:
    """The kernel's view of the flow and trigger registries (``kernel.env.KernelEnv``)."""

    def __init__(self, flows: FlowRegistry, triggers: TriggerRegistry | None = None) -> None:
        self._flows = flows
        self.triggers = triggers if triggers is not None else TriggerRegistry()

    def flow(self, flow_id: str, version: str | None = None) -> Flow | None:
        return self._flows.get(flow_id, version, include_unpublished=version is not None)

    def event_triggers(self, flow_id: str, event_type: str) -> Sequence[Trigger]:
        return self.triggers.event_triggers(flow_id, event_type)
