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
_MISSING_INPUT = re.compile(r"(?:^|: |\()input (?:key|path) '")


class InputError(Exception):
    """The selector cannot be applied (code ``INPUT_ERROR``)."""


def is_missing_input(message: str) -> bool:
    """Whether a step's error message says its input key or path was absent from the
    context (:func:`missing_input`'s note)."""
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


def placeholders(template: str) -> list[str]:
    """The paths of the ``${path}`` placeholders in ``template``, in order."""
    return _PLACEHOLDER.findall(template)


def render_text(template: str, context: dict[str, Any]) -> str:
    """``template`` with each ``${path}`` replaced by its value as text (JSON for
    objects and lists, nothing for an absent path): always a string, where a template
    selector's lone placeholder keeps the value's type."""
    return _PLACEHOLDER.sub(lambda m: _as_text(get_path(context, m.group(1))), template)


def _missing_path(context: dict[str, Any], path: str) -> str:
    """What is absent on the way down ``path``, naming the first part missing."""
    parts = path.split(".")
    for end in range(1, len(parts)):
        if get_path(context, ".".join(parts[:end])) is MISSING:
            break
    else:
        end = len(parts)
    if end == 1:
        return f"input path {path!r}: the context has no key {parts[0]!r}"
    return f"input path {path!r}: {'.'.join(parts[:end - 1])!r} has no {parts[end - 1]!r}"


def missing_input(selector: Any, context: dict[str, Any]) -> str | None:
    """For a ``key`` or ``path`` selector whose value is absent from the context, a note
    naming what is absent (``input key 'order': the context has no such key``); else
    None. The step still receives None: a flow may read an optional key. The runner
    adds the note to the step's error when the step fails, so
    a handler tripping over that None says why."""
    if isinstance(selector, KeySelector):
        if selector.key in context:
            return None
        return f"input key {selector.key!r}: the context has no such key"
    if isinstance(selector, PathSelector) and get_path(context, selector.path) is MISSING:
        return _missing_path(context, selector.path)
    return None


def resolve_input(selector: Any, context: dict[str, Any]) -> Any:
    """The value a step receives as ``params.input``; missing keys and paths give None
    (:func:`missing_input` says what was missing).

    It may share objects with ``context`` (and a ``static`` selector's value is the
    flow's own): whoever hands it on copies it (``kernel.copies.private_copy``), as the
    step runner does for the handler and ``decide`` for the history."""
    if isinstance(selector, KeySelector):
        return context.get(selector.key)
    if isinstance(selector, FullSelector):
        return dict(context)
    if isinstance(selector, PathSelector):
        value = get_path(context, selector.path)
        return None if value is MISSING else value
    if isinstance(selector, KeysSelector):
        return {key: context[key] for key in selector.keys if key in context}
    if isinstance(selector, TemplateSelector):
        return _interpolate(selector.template, context)
    if isinstance(selector, StaticSelector):
        return selector.value
    raise InputError(f"unknown input selector {selector!r}")
