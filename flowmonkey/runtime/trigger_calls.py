"""The engine's trigger calls, as commands: a definition checked and taken into the
registry, the ``trigger.register`` commands sent at start, and the answers of pause,
resume and a manual fire turned into results or errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flowmonkey.errors import CommandRejected, RegistrationError
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.handlers.registry import TriggerRegistry
from flowmonkey.kernel.trigger_checks import describe, trigger_problems
from flowmonkey.kernel.trigger_state import trigger_definition
from flowmonkey.log.base import OutRecord
from flowmonkey.model.trigger import Trigger
from flowmonkey.runtime.commands import raise_if_rejected
from flowmonkey.runtime.definitions import checked_definition, register_records


def checked_trigger(trigger: Trigger | Mapping[str, Any]) -> Trigger:
    """``trigger`` as a model (camelCase JSON accepted), refused with every problem
    named (the trigger and the field) when it cannot be registered."""
    return checked_definition(Trigger, trigger, trigger_problems, describe)


def register_commands(topic: str, triggers: Iterable[Trigger], now_ms: int,
                      by: str | None) -> list[OutRecord]:
    """The ``trigger.register`` records for ``triggers`` (routed by their entity)."""
    return register_records(topic, n.CMD_TRIGGER_REGISTER,
                            ((t.entity_id, trigger_definition(t)) for t in triggers),
                            now_ms, by)


def adopt_all(registry: TriggerRegistry, triggers: Iterable[Trigger | Mapping[str, Any]]
              ) -> None:
    for trigger in triggers:
        model = checked_trigger(trigger)
        if model.id in registry:
            raise RegistrationError(f"trigger {model.id!r} is given twice")
        registry.adopt(model)


def fired_execution(answer: Event) -> str:
    """The execution a ``trigger.fire`` started, or its refusal raised (``code``: the
    ``trigger.failed`` code, or the rejection's)."""
    raise_if_rejected(answer)
    if answer.type == n.TRIGGER_FAILED:
        raise CommandRejected(str(answer.data.get("message")),
                              code=str(answer.data.get("code")))
    return str(answer.data["execution_id"])


def changed(answer: Event) -> bool:
    """Whether a pause or resume changed the trigger (False: it already was so)."""
    raise_if_rejected(answer)
    return bool(answer.data.get("changed", True))


__all__ = ["adopt_all", "changed", "checked_trigger", "fired_execution",
           "register_commands"]
