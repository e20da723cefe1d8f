"""Input resolution: a step's input selector applied to the context (FEATURES A4)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from flowmonkey.kernel.paths import MISSING, get_path
from flowmonkey.model.selectors import (
    FullSelector,
    KeySelector,
    KeysSelector,
    PathSelector,
    StaticSelector,
    TemplateSelector,
)

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
_MISSING_INPUT = re.compile(r"(?:^|: )input (?:key|path) '")


class InputError(Exception):
    """The selector cannot be applied (code ``INPUT_ERROR``)."""


def is_missing_input(message: str) -> bool:
    """Whether an ``INPUT_ERROR`` message says a key or path was absent from the context."""
    return _MISSING_INPUT.search(message) is not None


def _as_text(value: Any) -> str:
    """How a value reads inside a longer template string (JSON for structures)."""
    if value is MISSING:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _interpolate(template: Any, context: dict[str, Any]) -> Any:
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            # Exactly one placeholder: the raw value, keeping its type.
            value = get_path(context, whole.group(1))
            return None if value is MISSING else value
        return _PLACEHOLDER.sub(lambda m: _as_text(get_path(context, m.group(1))), template)
    if isinstance(template, dict):
        return {key: _interpolate(value, context) for key, value in template.items()}
    if isinstance(template, list):
        return [_interpolate(item, context) for item in template]
    return template


def _missing_path(context: dict[str, Any], path: str) -> InputError:
    """The error for a path with no value, naming the first part that is absent."""
    parts = path.split(".")
    for end in range(1, len(parts)):
        if get_path(context, ".".join(parts[:end])) is MISSING:
            break
    else:
        end = len(parts)
    if end == 1:
        return InputError(f"input path {path!r}: the context has no key {parts[0]!r}")
    return InputError(f"input path {path!r}: {'.'.join(parts[:end - 1])!r} has no "
                      f"{parts[end - 1]!r}")


def resolve_input(selector: Any, context: dict[str, Any]) -> Any:
    """The value a step receives as ``params.input``.

    A ``key`` or ``path`` selector whose key or path is absent from the context raises
    InputError naming it (a present value that is null is given as None); ``keys``
    selects the keys that are present, and a template's missing placeholders read as
    null (or as nothing inside a longer string).

    It may share objects with ``context`` (and a ``static`` selector's value is the
    flow's own): whoever hands it on copies it (``kernel.copies.private_copy``), as the
    step runner does for the handler and ``decide`` for the history."""
    if isinstance(selector, KeySelector):
        value = context.get(selector.key, MISSING)
        if value is MISSING:
            raise InputError(f"input key {selector.key!r}: the context has no such key")
        return value
    if isinstance(selector, FullSelector):
        return dict(context)
    if isinstance(selector, PathSelector):
        value = get_path(context, selector.path)
        if value is MISSING:
            raise _missing_path(context, selector.path)
        return value
    if isinstance(selector, KeysSelector):
        return {key: context[key] for key in selector.keys if key in context}
    if isinstance(selector, TemplateSelector):
        return _interpolate(selector.template, context)
    if isinstance(selector, StaticSelector):
        return selector.value
    raise InputError(f"unknown input selector {selector!r}")
