"""A submission checked against its form's JSON Schema (Draft 2020-12, or the dialect
its ``$schema`` names), every error named by its JSON pointer.

User input never meets a backtracking regular expression: the schema's ``pattern``,
``patternProperties`` and the ``additionalProperties`` that depends on them run on
RE2 (linear time), not Python's ``re``. ``unevaluatedProperties`` next to
``patternProperties`` would go through Python's ``re`` inside the library, so such a
schema is refused (:func:`schema_problems`, raised by :func:`validator_for`); that a
schema is valid and its patterns RE2's is checked when the form is registered.
Formats are asserted, from a safe set only (``email``, ``date``, ``ipv4``, ``ipv6``,
``uuid``: no ``regex``, which would compile the user's text). References resolve
inside the schema only: nothing is fetched.

Validators are cached per schema (by its canonical JSON), a bounded number.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import orjson
import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

from flowmonkey.forms.sanitise import MAX_PROBLEMS, Problem, escape

SAFE_FORMATS = ("email", "date", "ipv4", "ipv6", "uuid")
MAX_MESSAGE_CHARS = 200
CACHED_VALIDATORS = 256


class SchemaUnsupported(ValueError):
    """A schema this module will not run on user input (see the module's docstring)."""


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """RE2's program for a schema's pattern, as registration checked it (RE2's default
    options: the same patterns compile here as there)."""
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:  # registration refuses these: a definition from elsewhere
        raise SchemaUnsupported(f"pattern {pattern[:100]!r} is not an RE2 expression") \
            from exc


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and \
            not compile_pattern(pattern).search(instance):
        yield ValidationError(f"does not match the pattern {pattern!r}")


def _pattern_properties(validator: Any, patterns: Mapping[str, Any], instance: Any,
                        schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = compile_pattern(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key,
                                             schema_path=pattern)


def _extras(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    regexes = [compile_pattern(p) for p in schema.get("patternProperties", {})]
    return [k for k in instance
            if k not in properties and not any(r.search(k) for r in regexes)]


def _additional_properties(validator: Any, additional: Any, instance: Any,
                           schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = _extras(instance, schema)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        for extra in extras:
            # one error per field, at its own pointer
            yield ValidationError("is not allowed (no such field)", path=[extra])


@lru_cache(maxsize=8)
def _dialect(base: type[Validator]) -> type[Validator]:
    """``base`` (the schema's ``$schema`` dialect) with the RE2 keywords."""
    extended: type[Validator] = validators.extend(base, {  # type: ignore[no-untyped-call]
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    })
    return extended
_FORMATS = FormatChecker(SAFE_FORMATS)


def schema_problems(schema: Mapping[str, Any]) -> list[str]:
    """Why ``schema`` may not check submissions here, beyond what registration checks
    (a valid schema, RE2 patterns): ``unevaluatedProperties`` beside
    ``patternProperties`` (the library would match the patterns with Python's ``re``)."""
    keywords: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            keywords.update(k for k in node if isinstance(k, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if {"patternProperties", "unevaluatedProperties"} <= keywords:
        return ["unevaluatedProperties cannot be used with patternProperties in a form's "
                "schema (use additionalProperties)"]
    return []


_cache: OrderedDict[bytes, Validator] = OrderedDict()


def validator_for(schema: Mapping[str, Any]) -> Validator:
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    problems = schema_problems(schema)
    if problems:
        raise SchemaUnsupported("; ".join(problems))
    base = validators.validator_for(schema, default=Draft202012Validator)
    made = _dialect(base)(schema, format_checker=_FORMATS)
    _cache[key] = made
    if len(_cache) > CACHED_VALIDATORS:
        _cache.popitem(last=False)
    return made


def pointer(path: Iterator[Any] | Any) -> str:
    return "".join(f"/{escape(str(part))}" for part in path)


def schema_errors(schema: Mapping[str, Any], data: Any) -> list[Problem]:
    """Every way ``data`` fails ``schema`` (at most :data:`MAX_PROBLEMS`), in a
    stable order: by pointer, then message."""
    found = []
    for error in validator_for(schema).iter_errors(data):
        found.append(Problem(pointer(error.absolute_path), _message(error)))
        if len(found) >= MAX_PROBLEMS:
            break
    return sorted(found, key=lambda p: (p.pointer, p.message))


def _message(error: ValidationError) -> str:
    message = error.message
    if error.validator == "required":
        # "'email' is a required property": the pointer is the object's, say the field
        return message
    if error.validator in ("type", "enum", "const", "format", "minLength", "maxLength",
                           "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                           "multipleOf", "minItems", "maxItems", "uniqueItems"):
        # the library's message quotes the value first; the pointer says where it is
        message = _without_instance(error)
    return message[:MAX_MESSAGE_CHARS]


def _without_instance(error: ValidationError) -> str:
    shown = repr(error.instance)
    message = error.message
    if message.startswith(shown):
        return "value" + message[len(shown):]
    return message
