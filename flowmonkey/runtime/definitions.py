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


def _name(raw: Any, index: int, what: str) -> str:
    item_id = raw.get("id") if isinstance(raw, Mapping) else None
    if isinstance(item_id, str) and item_id:
        return f"{what} {item_id!r}"
    return f"{what} #{index + 1}"


def parse_definitions(raw: Iterable[Any], model_type: type[M], what: str, shape: str,
                      problems_of: Callable[[M], Problems], limit: int
                      ) -> tuple[list[M], list[str]]:
    """The definitions of ``raw`` (as written, camelCase, or models) that are valid,
    and the problems of the others, each naming the definition (``what`` and its id)
    and the field. ``shape``: the fields an object needs, for a value that is none."""
    from flowmonkey.model.flow import json_path

    found: list[M] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        if index >= limit:
            problems.append(f"more than {limit} {what}s")
            break
        if isinstance(item, model_type):
            parsed = item
        elif not isinstance(item, Mapping):
            problems.append(f"{_name(item, index, what)}: a {what} must be an object with "
                            f"{shape}, got {type(item).__name__}")
            continue
        else:
            try:
                parsed = model_type.model_validate(dict(item))
            except ValidationError as exc:
                problems += [f"{_name(item, index, what)}: {json_path(e['loc']) or f'({what})'}"
                             f": {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors()]
                continue
        more = [f"{what} {getattr(parsed, 'id', '?')!r}: {field}: {problem}"
                for field, problem in problems_of(parsed)]
        if more:
            problems += more
        else:
            found.append(parsed)
    return found, problems


def twice_problems(items: Iterable[M], what: str) -> list[str]:
    """An id given twice with different definitions."""
    found: list[str] = []
    seen: dict[str, M] = {}
    for item in items:
        item_id = str(getattr(item, "id", ""))
        before = seen.get(item_id)
        if before is not None and before != item:
            found.append(f"{what} {item_id!r}: id: defined twice, differently")
        seen[item_id] = item
    return found


def unique(items: Iterable[M]) -> list[M]:
    """``items`` without repeats of one definition (the last of an id wins)."""
    by_id: dict[str, M] = {}
    for item in items:
        item_id = str(getattr(item, "id", ""))
        by_id.pop(item_id, None)
        by_id[item_id] = item
    return list(by_id.values())


__all__ = ["checked_definition", "parse_definitions", "register_records", "twice_problems",
           "unique"]
