"""The engine's trigger calls, as commands: a definition checked and taken into the
registry, the ``trigger.register`` commands sent at start, and the answers of pause,
resume and a manual fire turned into results or errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from flowmonkey.errors import CommandRejected, RegistrationError
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, Event
from flowmonkey.handlers.registry import TriggerRegistry
from flowmonkey.kernel.trigger_checks import describe, trigger_problems
from flowmonkey.kernel.trigger_state import trigger_definition
from flowmonkey.log.base import OutRecord
from flowmonkey.model.trigger import Trigger
from flowmonkey.runtime.commands import command_record, raise_if_rejected


def checked_trigger(trigger: Trigger | Mapping[str, Any]) -> Trigger:
    """``trigger`` as a model (camelCase JSON accepted), refused with every problem
    named (the trigger and the field) when it cannot be registered."""
    if isinstance(trigger, Trigger):
        model = trigger
    else:
        try:
            model = Trigger.model_validate(trigger)
        except ValidationError as exc:
            name = trigger.get("id", "?") if isinstance(trigger, Mapping) else "?"
            problems = [(".".join(map(str, e["loc"])) or "(definition)", e["msg"])
                        for e in exc.errors()]
            raise RegistrationError(describe(str(name), problems)) from None
    problems = trigger_problems(model)
    if problems:
        raise RegistrationError(describe(model.id, problems))
    return model


def register_commands(topic: str, triggers: Iterable[Trigger], now_ms: int,
                      by: str | None) -> list[OutRecord]:
    """The ``trigger.register`` records for ``triggers`` (routed by their entity)."""
    records = []
    for trigger in triggers:
        command = Command(type=n.CMD_TRIGGER_REGISTER, command_id=uuid.uuid4().hex,
                          execution_id=trigger.entity_id, timestamp_ms=now_ms,
                          tenant_id=None, data={"definition": trigger_definition(trigger),
                                                "by": by})
        records.append(command_record(topic, command, trigger.entity_id))
    return records


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
