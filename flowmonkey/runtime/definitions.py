"""Definitions of log entities (triggers, forms) given to an engine: checked into
their model with every problem named, and the register commands that carry them to
their entity's partition."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flowmonkey.errors import RegistrationError
from flowmonkey.events.envelope import Command
from flowmonkey.log.base import OutRecord
from flowmonkey.runtime.commands import command_record

Problems = list[tuple[str, str]]


M = TypeVar("M", bound=BaseModel)


def checked_definition(model_type: type[M], value: M | Mapping[str, Any],
                       problems_of: Callable[[M], Problems],
                       describe: Callable[[str, Problems], str]) -> M:
    """``value`` as a ``model_type`` (camelCase JSON accepted), refused with
    :class:`RegistrationError` naming every problem (the definition and the field)
    when it cannot be registered."""
    if isinstance(value, model_type):
        model = value
    else:
        try:
            model = model_type.model_validate(value)
        except ValidationError as exc:
            name = value.get("id", "?") if isinstance(value, Mapping) else "?"
            problems = [(".".join(map(str, e["loc"])) or "(definition)", e["msg"])
                        for e in exc.errors()]
            raise RegistrationError(describe(str(name), problems)) from None
    problems = problems_of(model)
    if problems:
        raise RegistrationError(describe(str(getattr(model, "id", "?")), problems))
    return model


def register_records(topic: str, command_type: str,
                     definitions: Iterable[tuple[str, dict[str, Any]]], now_ms: int,
                     by: str | None) -> list[OutRecord]:
    """The register commands (``command_type``) for ``(entity id, definition JSON)``
    pairs, each routed by its entity."""
    records = []
    for entity_id, definition in definitions:
        command = Command(type=command_type, command_id=uuid.uuid4().hex,
                          execution_id=entity_id, timestamp_ms=now_ms, tenant_id=None,
                          data={"definition": definition, "by": by})
        records.append(command_record(topic, command, entity_id))
    return records


__all__ = ["checked_definition", "register_records"]
