"""Step configs checked against their handlers when a flow is registered or validated.

A step's ``config`` is validated with its handler's ``configSchema`` (the JSON Schema the
API publishes, so editors and the engine agree) and, for a handler that defines
:meth:`ChecksConfig.check_config`, by the handler itself: a transform's expression must
parse, a conditional's or switch's targets must be steps of the flow. Without this a
typo passed validation and surfaced only at run time, or not at all (a misspelled
``expresion`` made a transform pass its input through).

An unknown config key close to a known one is refused as a likely typo; other unknown
keys pass, as the original ignored them (flows written for it may carry editor data).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from difflib import get_close_matches
from typing import Any, Protocol, runtime_checkable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from flowmonkey.handlers.base import StepHandler
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
            found += [(key, field, message)
                      for field, message in handler.check_config(step.config, step_ids)]
    return found


def schema_problems(handler_type: str, schema: Mapping[str, Any],
                    config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, message) for each way ``config`` breaks ``schema``, then each unknown key
    that looks like a misspelling of a known one."""
    try:
        validator = _validator(schema)
    except SchemaError as exc:
        yield "config", (f"the {handler_type!r} handler's configSchema is not valid JSON "
                         f"Schema ({exc.message}); fix the handler's metadata")
        return
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in
                                                                      e.absolute_path]):
        yield config_field(error.absolute_path), error.message
    known = schema.get("properties")
    if isinstance(known, Mapping):
        for name in config:
            if name in known:
                continue
            close = get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.8)
            if close:
                yield (config_field([name]),
                       f"unknown config field {name!r}; did you mean {close[0]!r}?")


def config_field(path: Iterable[str | int]) -> str:
    """A path into a config as users write it: ``config.conditions[0].target``."""
    return "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Draft202012Validator]] = {}


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    # Schemas are module constants, or a user handler's metadata: one compiled validator
    # each (the entry keeps the schema alive, so its id cannot be reused meanwhile).
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator
