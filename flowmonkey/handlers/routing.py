r"""The routing handlers ``conditional`` and ``switch``: pick the next step from the input.

Both read dot paths from the step's input and answer with a next-step override. A
target of ``None`` (JSON null) is an explicit override that completes the flow, so
those results are built as ``StepResult(..., has_next_step=True)``: ``Result.success``
treats ``None`` as "no override".

The operators never coerce types (docs/compatibility.md):

* ``gt``/``gte``/``lt``/``lte`` compare numbers with numbers and strings with
  strings only; anything else is false (no ``'10' > 9``, no ``null >= 0``);
* ``eq``/``neq`` use Python equality, deep for lists and objects, except that a
  boolean never equals a number (``True == 1`` is false here);
* ``contains`` tests substrings of strings and membership in lists;
* an invalid ``matches`` pattern fails the step with ``INVALID_REGEX`` rather than
  crashing it (and is refused when the flow is registered).

``matches`` runs on `RE2 <https://github.com/google/re2/wiki/Syntax>`_, which takes time
linear in the text whatever the pattern: with a backtracking engine ``^(a+)+$`` on 24
``a``s and a ``!`` holds the event loop past the step's timeout, doubling per character.
RE2 has the usual syntax (classes, groups, named groups, ``{n,m}``, ``(?i)``) but no
backreferences (``\1``, ``(?P=name)``), no lookaround (``(?=``, ``(?!``, ``(?<=``,
``(?<!``), no possessive or atomic groups and no ``\Z`` (write ``\z``); ``\d``, ``\w``,
``\s`` and ``\b`` are ASCII-only, and ``$`` matches only at the very end of the text.
Patterns are at most :data:`MAX_PATTERN_LENGTH` characters and a compiled pattern
uses at most :data:`PATTERN_MAX_MEMORY` bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import re2

from flowmonkey.handlers.base import HandlerMetadata, HandlerParams
from flowmonkey.handlers.config import config_field
from flowmonkey.handlers.deadline import check_deadline, step_deadline
from flowmonkey.kernel.paths import MISSING, get_path
from flowmonkey.model.result import Result, StepResult

OPERATORS = (
    "eq", "neq", "gt", "gte", "lt", "lte", "in", "nin", "contains", "startsWith",
    "endsWith", "exists", "notExists", "matches",
)

_TARGET = {"type": ["string", "null"],
           "description": "step id to go to; null completes the flow"}

CONDITIONAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["conditions"],
    "properties": {
        "conditions": {
            "type": "array",
            "minItems": 1,
            "description": "evaluated in order; the first match wins",
            "items": {
                "type": "object",
                "required": ["path", "op"],
                "properties": {
                    "path": {"type": "string", "description": "dot path into the input"},
                    "op": {"type": "string", "enum": list(OPERATORS)},
                    "value": {"description": "compared with the value at path"},
                    "target": _TARGET,
                },
            },
        },
        "default": {**_TARGET, "description": "when nothing matches; null completes the flow"},
    },
}

SWITCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["path"],
    "properties": {
        "path": {"type": "string", "description": "dot path into the input"},
        "cases": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "value as a string (true, null, 1, ...) -> step id"},
        "default": {**_TARGET, "description": "when no case matches; null completes the flow"},
    },
}


def _route(output: dict[str, Any], target: Any) -> StepResult:
    return StepResult("success", output=output, next_step=target, has_next_step=True)


def _unknown_target(field: str, target: Any, step_ids: frozenset[str]) -> list[tuple[str, str]]:
    # null (or no target) completes the flow or follows the transitions: only a named
    # step can be unknown; a non-string one the config schema reports
    if isinstance(target, str) and target and target not in step_ids:
        return [(field, f"unknown step {target!r}")]
    return []


def _bad_target(target: Any) -> bool:
    return target is not None and not isinstance(target, str)


class ConditionalHandler:
    """Go to the target of the first matching condition (type ``conditional``)."""

    metadata = HandlerMetadata(
        type="conditional",
        name="Conditional",
        description="Route to the target of the first condition that matches the input.",
        category="control",
        config_schema=CONDITIONAL_SCHEMA,
    )

    def check_config(self, config: Mapping[str, Any],
                     step_ids: frozenset[str]) -> list[tuple[str, str]]:
        """Targets must be steps of the flow, and a ``matches`` pattern must compile."""
        found = _unknown_target("config.default", config.get("default"), step_ids)
        conditions = config.get("conditions")
        for index, condition in enumerate(conditions if isinstance(conditions, list) else []):
            if not isinstance(condition, Mapping):
                continue  # the config schema says so
            where = f"config.conditions[{index}]"
            found += _unknown_target(f"{where}.target", condition.get("target"), step_ids)
            pattern = condition.get("value")
            if condition.get("op") == "matches" and isinstance(pattern, str):
                try:
                    compile_pattern(pattern)
                except PatternError as exc:
                    found.append((f"{where}.value", f"invalid regular expression: {exc}"))
        return found

    async def execute(self, params: HandlerParams) -> StepResult:
        config = params.config
        conditions = config.get("conditions")
        if not conditions:
            return Result.failure("MISSING_CONDITIONS", "No conditions defined")
        if not isinstance(conditions, list):
            return Result.failure("INPUT_ERROR", "conditional: config.conditions must be a list")
        deadline = step_deadline()
        for index, condition in enumerate(conditions):
            # each condition is linear in its data; many of them on big data add up
            check_deadline(deadline)
            if not isinstance(condition, Mapping) or not isinstance(condition.get("path"), str):
                return Result.failure(
                    "INPUT_ERROR", f"conditional: conditions[{index}] needs a string path")
            path: str = condition["path"]
            op = condition.get("op")
            try:
                hit = evaluate_condition(get_path(params.input, path), op,
                                         condition.get("value", MISSING))
            except PatternError as exc:
                return Result.failure(
                    "INVALID_REGEX",
                    f"conditional: conditions[{index}] has an invalid regular expression "
                    f"{condition.get('value')!r}: {exc}",
                    details={"index": index, "pattern": condition.get("value")})
            if not hit:
                continue
            target = condition.get("target")
            if _bad_target(target):
                return Result.failure(
                    "INPUT_ERROR", f"conditional: conditions[{index}].target must be a step id")
            output = {"matched": path, "op": op, "target": target}
            # No target key at all means "no override": follow the step's transitions.
            return _route(output, target) if "target" in condition else Result.success(output)
        if "default" in config:
            default = config["default"]
            if _bad_target(default):
                return Result.failure("INPUT_ERROR", "conditional: default must be a step id")
            return _route({"matched": None, "target": default}, default)
        return Result.failure("NO_MATCH", "No condition matched and no default defined")


class SwitchHandler:
    """Go to the step named for the value at a path (type ``switch``)."""

    metadata = HandlerMetadata(
        type="switch",
        name="Switch",
        description="Route on the string form of the value at a path.",
        category="control",
        config_schema=SWITCH_SCHEMA,
    )

    def check_config(self, config: Mapping[str, Any],
                     step_ids: frozenset[str]) -> list[tuple[str, str]]:
        """Every case's target and the default must be steps of the flow."""
        found = _unknown_target("config.default", config.get("default"), step_ids)
        cases = config.get("cases")
        for value, target in (cases.items() if isinstance(cases, Mapping) else ()):
            found += _unknown_target(config_field(["cases", str(value)]), target, step_ids)
        return found

    async def execute(self, params: HandlerParams) -> StepResult:
        config = params.config
        path = config.get("path")
        if not path:
            return Result.failure("MISSING_PATH", "No path defined in switch config")
        if not isinstance(path, str):
            return Result.failure("INPUT_ERROR", "switch: config.path must be a string")
        cases = config.get("cases") or {}
        if not isinstance(cases, Mapping):
            return Result.failure("INPUT_ERROR", "switch: config.cases must be an object")
        actual = get_path(params.input, path)
        key = js_string(actual)
        value = None if actual is MISSING else actual
        target = cases.get(key)
        if target:
            if not isinstance(target, str):
                return Result.failure("INPUT_ERROR", f"switch: cases[{key!r}] must be a step id")
            return _route({"path": path, "value": value, "target": target}, target)
        if "default" in config:
            default = config["default"]
            if _bad_target(default):
                return Result.failure("INPUT_ERROR", "switch: default must be a step id")
            return _route({"path": path, "value": value, "target": default}, default)
        return Result.failure("NO_MATCH",
                              f'No case matched value "{key}" and no default defined')


def js_string(value: Any) -> str:
    """JavaScript's ``String(value)`` for JSON scalars (``MISSING`` is ``undefined``)."""
    if value is MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def strict_equal(a: Any, b: Any) -> bool:
    """Python equality, deep, except that booleans never equal numbers."""
    if a is MISSING or b is MISSING:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _comparable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def evaluate_condition(actual: Any, op: Any, value: Any) -> bool:
    """One operator; ``actual``/``value`` may be ``MISSING``. Raises
    :class:`PatternError` for a bad ``matches`` pattern. An unknown operator is false
    (the config schema refuses one when the flow is registered)."""
    if op == "eq":
        return strict_equal(actual, value)
    if op == "neq":
        return not strict_equal(actual, value)
    if op in ("gt", "gte", "lt", "lte"):
        if not _comparable(actual, value):
            return False
        if op == "gt":
            return bool(actual > value)
        if op == "gte":
            return bool(actual >= value)
        if op == "lt":
            return bool(actual < value)
        return bool(actual <= value)
    if op in ("in", "nin"):
        if not isinstance(value, list):
            return False
        found = any(strict_equal(actual, item) for item in value)
        return found if op == "in" else not found
    if op == "contains":
        if isinstance(actual, str):
            return isinstance(value, str) and value in actual
        if isinstance(actual, list):
            return any(strict_equal(item, value) for item in actual)
        return False
    if op in ("startsWith", "endsWith"):
        if not (isinstance(actual, str) and isinstance(value, str)):
            return False
        return actual.startswith(value) if op == "startsWith" else actual.endswith(value)
    if op == "exists":
        return actual is not MISSING and actual is not None
    if op == "notExists":
        return actual is MISSING or actual is None
    if op == "matches":
        if not isinstance(value, str):
            return False
        # Compiled even when the actual value is not a string, so a bad pattern is
        # reported whatever the data.
        pattern = compile_pattern(value)
        return isinstance(actual, str) and pattern.search(_utf8_safe(actual)) is not None
    return False


MAX_PATTERN_LENGTH = 1_000
"""The longest ``matches`` pattern, in characters."""

PATTERN_MAX_MEMORY = 1 << 20
"""RE2's ``max_mem`` for one pattern: its compiled program and its match cache. A
pattern that needs more is refused; a search that would need more falls back to a
slower, still linear, automaton."""


class PatternError(ValueError):
    """A ``matches`` pattern that RE2 cannot run (bad syntax, unsupported, too big)."""


def compile_pattern(source: str) -> Any:
    """The RE2 pattern for ``source``; raises :class:`PatternError` naming the problem."""
    if len(source) > MAX_PATTERN_LENGTH:
        raise PatternError(f"the pattern is {len(source)} characters long "
                           f"(max {MAX_PATTERN_LENGTH})")
    return _compile(source)


@lru_cache(maxsize=64)
def _compile(source: str) -> Any:
    # Python's parser first, for its syntax check only (nothing is ever matched with
    # it): RE2 reads some patterns it cannot use as literal text instead of refusing
    # them, e.g. `a{99999999999}`, which would silently mean something else.
    try:
        re.compile(source)
    except re.error as exc:
        raise PatternError(str(exc)) from None
    except (OverflowError, RecursionError) as exc:
        raise PatternError(f"the pattern is too large to compile ({type(exc).__name__})") \
            from None
    options = re2.Options()
    options.max_mem = PATTERN_MAX_MEMORY
    options.log_errors = False  # the caller reports it, with the flow and the step
    try:
        return re2.compile(source, options)
    except re2.error as exc:
        raise PatternError(_re2_message(exc)) from None


_UNSUPPORTED = ("invalid perl operator", "invalid escape sequence", "bad repetition operator")


def _re2_message(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else exc
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if message.startswith(_UNSUPPORTED):
        message += (" (patterns are RE2 syntax: no backreferences, lookaround, "
                    "possessive quantifiers or \\Z)")
    return message


def _utf8_safe(text: str) -> str:
    # RE2 matches UTF-8; a lone surrogate cannot be encoded, so it is read as U+FFFD
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
