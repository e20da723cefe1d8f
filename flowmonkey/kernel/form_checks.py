"""What a form definition needs beyond its model's validation, and the fields of the
form commands (checked before any decider reads them, as ``command_checks`` does).

``form_problems`` is what registration (the engine, file loading) and the kernel's
``form.register`` both refuse: a schema ``pattern`` (or ``patternProperties`` key)
that RE2 cannot compile, since submissions are matched with RE2 only, so user input
never meets a backtracking regex. That the schema is a valid JSON Schema is checked
where definitions come in (``runtime/form_calls.py``): the kernel loads no JSON
Schema library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.model.form import Form

Check = Callable[[Any], str | None]

VERDICTS = frozenset({"valid", "invalid", "spam", "captcha_failed"})
MAX_ERRORS = 100
"""Schema errors a submission's record keeps (the API answers with all it found)."""
MAX_ERROR_CHARS = 500
MAX_KEY_CHARS = 128
MAX_TOKEN_CHARS = 1_000
MAX_SUBMISSION_ID_CHARS = 100
# values whose keys are data, not schema keywords
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


def form_problems(form: Form) -> list[tuple[str, str]]:
    """``(field, problem)`` for each problem of a valid model's settings."""
    problems: list[tuple[str, str]] = []
    for where, pattern in schema_patterns(form.json_schema, "schema"):
        problem = re2_problem(pattern)
        if problem is not None:
            problems.append((where, f"pattern {pattern[:200]!r} is not an RE2 expression "
                                    f"(submissions are matched with RE2 only): {problem}"))
    return problems


def schema_patterns(schema: Any, where: str) -> Iterator[tuple[str, str]]:
    """``(where, pattern)`` of every regular expression in a JSON Schema."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from schema_patterns(item, f"{where}[{index}]")
        return
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key in _DATA_KEYWORDS:
            continue
        if key == "pattern" and isinstance(value, str):
            yield f"{where}.pattern", value
        elif key == "patternProperties" and isinstance(value, dict):
            for pattern, sub in value.items():
                yield f"{where}.patternProperties", pattern
                yield from schema_patterns(sub, f"{where}.patternProperties[{pattern!r}]")
        elif key == "properties" and isinstance(value, dict):
            # a property may be called "pattern": its value is a schema, not a pattern
            for name, sub in value.items():
                yield from schema_patterns(sub, f"{where}.properties.{name}")
        else:
            yield from schema_patterns(value, f"{where}.{key}")


def re2_problem(pattern: str) -> str | None:
    """Why RE2 cannot compile ``pattern``, or None."""
    import re2  # a C extension, loaded only when a form has patterns

    try:
        re2.compile(pattern)
    except Exception as exc:  # re2.error, and TypeErrors of odd input
        return str(exc) or type(exc).__name__
    return None


def describe(form_id: str, problems: list[tuple[str, str]]) -> str:
    return f"form {form_id!r}: " + "; ".join(f"{f}: {p}" for f, p in problems)


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {_kind(value)}"


def _bounded(limit: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return f"must be a non-empty string, not {_kind(value)}"
        if len(value) > limit:
            return f"is {len(value)} characters long, over {limit}"
        return None
    return check


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"must be an object, not {_kind(value)}"


def _verdict(value: Any) -> str | None:
    return None if value in VERDICTS else f"must be one of {', '.join(sorted(VERDICTS))}"


def _errors(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be a list, not {_kind(value)}"
    if len(value) > MAX_ERRORS:
        return f"has {len(value)} entries, over {MAX_ERRORS}"
    for error in value:
        if not isinstance(error, dict) or not isinstance(error.get("pointer"), str) \
                or not isinstance(error.get("message"), str):
            return "must hold objects with a string pointer and message"
        if len(error["pointer"]) > MAX_ERROR_CHARS or len(error["message"]) > MAX_ERROR_CHARS:
            return f"has a pointer or message over {MAX_ERROR_CHARS} characters"
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def submit_problem(data: Mapping[str, Any]) -> str | None:
    """What a ``form.submit`` needs beyond its fields' types."""
    if data.get("token") is not None and data.get("execution_id") is None:
        return (f"{n.CMD_FORM_SUBMIT} command carries a token but no execution_id (the "
                "execution the token belongs to)")
    if data.get("verdict") in ("valid", "invalid") and data.get("data") is None:
        return f"{n.CMD_FORM_SUBMIT} command with verdict {data['verdict']} has no data"
    return None


FORM_FIELDS: dict[str, Mapping[str, tuple[bool, Check]]] = {
    n.CMD_FORM_REGISTER: {"definition": (True, _object), "by": (False, _text)},
    n.CMD_FORM_SUBMIT: {
        "submission_id": (True, _bounded(MAX_SUBMISSION_ID_CHARS)),
        "verdict": (True, _verdict),
        "content_hash": (True, _bounded(MAX_KEY_CHARS)),
        "address_key": (False, _bounded(MAX_KEY_CHARS)),
        "data": (False, _object),
        "errors": (False, _errors),
        "token": (False, _bounded(MAX_TOKEN_CHARS)),
        "execution_id": (False, _bounded(MAX_TOKEN_CHARS)),
    },
}


__all__ = ["FORM_FIELDS", "MAX_ERRORS", "MAX_ERROR_CHARS", "VERDICTS", "describe",
           "form_problems", "re2_problem", "schema_patterns", "submit_problem"]
