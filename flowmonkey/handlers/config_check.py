"""Step configs checked against their handlers when a flow is registered or validated.

A step's ``config`` is validated with its handler's ``configSchema`` (the JSON Schema the
API publishes, so editors and the engine agree) and, for a handler that defines
:meth:`ChecksConfig.check_config`, by the handler itself: a transform's expression must
parse, a conditional's or switch's targets must be steps of the flow. Without this a
typo passed validation and surfaced only at run time, or not at all (a misspelled
``expresion`` made a transform pass its input through).

An unknown config key close to a known one is refused as a likely typo; other unknown
keys pass, since existing flows may carry editor data (docs/compatibility.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import get_close_matches
from typing import Any, Protocol, runtime_checkable

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from flowmonkey.handlers.base import StepHandler
from flowmonkey.handlers.config import config_field
from flowmonkey.model.flow import Flow

Problem = tuple[str | None, str, str]
"""(step id, field as users write it, message), as :meth:`Flow.problems` gives them."""


@runtime_checkable
class ChecksConfig(Protocol):
    """A handler that checks a step's config beyond its JSON Schema."""

    def check_config(self, config: Mapping[str, Any],
                     step_ids: frozenset[str]) -> list[tuple[str, str]]:
        """(field, message) for each problem of ``config``; ``step_ids`` are the
        flow's steps (for configs that name steps)."""
        ...


def config_problems(flow: Flow, handlers: Iterable[StepHandler]) -> list[Problem]:
    """Every problem of ``flow``'s step configs against ``handlers``; a step whose type
    has no handler here is left to :meth:`Flow.problems` (unknown type)."""
    by_type = {h.metadata.type: h for h in handlers}
    step_ids = frozenset(flow.steps)
    found: list[Problem] = []
    for key, step in flow.steps.items():
        handler = by_type.get(step.type)
        if handler is None:
            continue
        schema = handler.metadata.config_schema
        if schema:
            found += [(key, field, message)
                      for field, message in schema_problems(step.type, schema, step.config)]
        if isinstance(handler, ChecksConfig):
            try:
                checked = handler.check_config(step.config, step_ids)
            except Exception as exc:  # a user's handler: report it, never crash the caller
                checked = [("config", f"the {step.type!r} handler's check_config failed: "
                                      f"{type(exc).__name__}: {exc}")]
            found += [(key, field, message) for field, message in checked]
    return found


def schema_problems(handler_type: str, schema: Mapping[str, Any],
                    config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each way ``config`` breaks ``schema``, then each unknown key
    that looks like a misspelling of a known one.

    A null counts as absent, as the handlers read it (and editors write null for a
    cleared field). Messages say what is expected, never the value given: a header
    can hold a secret, and an expression can be long.
    """
    try:
        validator = _validator(schema)
        errors = sorted(validator.iter_errors(_without_nulls(config)),
                        key=lambda e: [str(p) for p in e.absolute_path])
        found = [_problem(error) for error in errors]
    except Exception as exc:  # a schema jsonschema refuses, or a $ref it cannot resolve
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return [("config", f"the {handler_type!r} handler's configSchema cannot be used "
                           f"({_short(message)}); fix the handler's metadata")]
    known = schema.get("properties")
    if isinstance(known, Mapping):
        for name in config:
            if name in known:
                continue
            close = get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.8)
            if close:
                found.append((config_field([name]),
                              f"unknown config field {name!r}; did you mean {close[0]!r}?"))
    return found


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


_JSON_TYPES = {"string": "a string", "number": "a number", "integer": "an integer",
               "boolean": "true or false", "object": "an object", "array": "a list",
               "null": "null"}
_EXPECTED = {
    "minimum": "at least {}", "maximum": "at most {}", "exclusiveMinimum": "more than {}",
    "exclusiveMaximum": "less than {}", "minLength": "at least {} characters long",
    "maxLength": "at most {} characters long", "minItems": "a list of at least {} items",
    "maxItems": "a list of at most {} items", "pattern": "text matching {!r}",
    "format": "a valid {}", "const": "exactly {}",
}


def _problem(error: ValidationError) -> tuple[str, str]:
    path = list(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        # jsonschema names the missing key in its message only: "'url' is a required..."
        missing = error.message.split("'")[1] if error.message.count("'") >= 2 else None
        if missing is not None:
            return config_field([*path, missing]), "is required"
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return config_field(path), "must be " + " or ".join(
            _JSON_TYPES.get(str(t), str(t)) for t in types)
    if kind in ("anyOf", "oneOf") and isinstance(expected, list):
        # jsonschema's own message quotes the value, which may be a secret
        return config_field(path), "must be " + " or ".join(
            _describe(option) for option in expected)
    if kind == "enum" and isinstance(expected, list):
        return config_field(path), "must be one of " + ", ".join(
            _short(orjson.dumps(v).decode(), 40) for v in expected)
    template = _EXPECTED.get(str(kind))
    if template is not None:
        return config_field(path), "must be " + template.format(expected)
    return config_field(path), _short(error.message)


def _describe(schema: Any) -> str:
    """What a value matching ``schema`` is, in words: its types, or the keys an object
    must have (``{"$vault": ...}``)."""
    if not isinstance(schema, Mapping):
        return "a valid value"
    required = schema.get("required")
    if schema.get("type") == "object" and isinstance(required, list) and required:
        return "an object " + _short(orjson.dumps(dict.fromkeys(
            (str(k) for k in required), "...")).decode(), 60)
    types = schema.get("type")
    if types is not None:
        return " or ".join(_JSON_TYPES.get(str(t), str(t))
                           for t in (types if isinstance(types, list) else [types]))
    return "a valid value"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


_VALIDATORS: dict[bytes, Validator] = {}
_MAX_VALIDATORS = 256


def _validator(schema: Mapping[str, Any]) -> Validator:
    # One compiled validator per distinct schema (by its content, so a handler that
    # builds its schema afresh each time does not grow the cache), in the draft the
    # schema declares ($schema), 2020-12 by default.
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    validator = _VALIDATORS.get(key)
    if validator is None:
        as_dict = dict(schema)
        cls = validator_for(as_dict, default=Draft202012Validator)
        cls.check_schema(as_dict)
        validator = cls(as_dict)
        if len(_VALIDATORS) >= _MAX_VALIDATORS:
            _VALIDATORS.clear()
        _VALIDATORS[key] = validator
    return validator
