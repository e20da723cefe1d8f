"""What makes a command well-formed, checked before any decider reads it.

Commands come from any producer on the log, so a missing or mistyped field is bad
input: it is refused with ``INVALID_COMMAND`` and a reason naming the field. The
checks are explicit, so that an exception raised while deciding is a fault of the
kernel (the processor rejects that command with ``INTERNAL_ERROR``), never mistaken
for bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.form_checks import FORM_FIELDS, submit_problem
from flowmonkey.kernel.job_checks import JOB_FIELDS
from flowmonkey.kernel.trigger_checks import TRIGGER_FIELDS
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.form import ENTITY_PREFIX as FORM_PREFIX
from flowmonkey.model.limits import (
    DEFAULT_MAX_TOTAL_SIZE_BYTES,
    MAX_NESTING_LIMIT,
    ContextLimits,
    TimeoutConfig,
)
from flowmonkey.model.result import StepResult
from flowmonkey.model.trigger import ENTITY_PREFIX as TRIGGER_PREFIX

Check = Callable[[Any], str | None]
"""A field's check: None when the value is acceptable, else what is wrong with it."""

MAX_ID_CHARS = 512
"""Longest command or execution id accepted: every event of the command carries it."""


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {_kind(value)}"


def _integer(value: Any) -> str | None:
    return None if type(value) is int else f"must be an integer, not {_kind(value)}"


def _natural(value: Any) -> str | None:
    if type(value) is not int:
        return f"must be an integer, not {_kind(value)}"
    return None if value >= 0 else "must not be negative"


def _flag(value: Any) -> str | None:
    return None if type(value) is bool else f"must be true or false, not {_kind(value)}"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"must be an object, not {_kind(value)}"


def _anything(value: Any) -> str | None:
    return None


def _status(value: Any) -> str | None:
    if value in _STATUSES:
        return None
    return f"must be one of {', '.join(sorted(_STATUSES))}, not {value!r}"[:300]


def _options(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"must be an object, not {_kind(value)}"
    for name, check in _OPTION_FIELDS.items():
        if value.get(name) is not None:
            problem = check(value[name])
            if problem is not None:
                return f"{name} {problem}"
    limits = value.get("limits")
    if limits is not None:
        problem = _limits_problem(limits)
        if problem is not None:
            return problem
        depth = limits.get("max_depth")
        if isinstance(depth, int) and depth > MAX_NESTING_LIMIT:
            return (f"limits.max_depth {depth} is over {MAX_NESTING_LIMIT}, deeper than "
                    "the log can write")
    return None


# limits found valid before, keyed with their types: every start of an engine carries
# the same ones, and validating them costs more than the rest of the checks
_VALID_LIMITS: set[tuple[Any, ...]] = set()


def _limits_problem(limits: Any) -> str | None:
    try:
        key = tuple((k, type(v), v) for k, v in limits.items())
        if key in _VALID_LIMITS:
            return None
    except (AttributeError, TypeError):  # not a dict, or unhashable values: validate
        key = None
    problem = _model(ContextLimits, limits, "limits")
    if problem is None and key is not None and len(_VALID_LIMITS) < 1024:
        _VALID_LIMITS.add(key)
    return problem


def _metadata(value: Any) -> str | None:
    """An object the log can write. The edges (the HTTP API) hold metadata to the
    context's limits; this is the backstop for any other producer: values nested
    up to MAX_NESTING_LIMIT levels, the whole up to the context's total size."""
    if not isinstance(value, dict):
        return f"must be an object, not {_kind(value)}"
    if lim.depth_of(value, MAX_NESTING_LIMIT + 2) > MAX_NESTING_LIMIT + 1:
        return f"nests deeper than {MAX_NESTING_LIMIT} levels"
    try:
        size = lim.encoded_size(value)
    except lim.LimitViolation as violation:
        return violation.message
    if size > DEFAULT_MAX_TOTAL_SIZE_BYTES:
        return f"is {size} bytes, over {DEFAULT_MAX_TOTAL_SIZE_BYTES}"
    return None


def _timeout(value: Any) -> str | None:
    return _model(TimeoutConfig, value, "")


def _model(model: type[ContextLimits] | type[TimeoutConfig], value: Any,
           name: str) -> str | None:
    if not isinstance(value, dict):
        return f"{name} must be an object, not {_kind(value)}".strip()
    try:
        model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        return f"{name} is invalid: {problems}".strip()[:500]
    return None


def _step_result(value: Any) -> str | None:
    return None if isinstance(value, StepResult) else "must be a step result"


def _raised(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"must be an object, not {_kind(value)}"
    if not isinstance(value.get("code"), str) or not isinstance(value.get("message"), str):
        return "must have a string code and message"
    return None


def _writes(value: Any) -> str | None:
    if not isinstance(value, list | tuple):
        return f"must be a list, not {_kind(value)}"
    for write in value:
        if not isinstance(write, list | tuple) or len(write) != 2 or \
                not isinstance(write[0], str):
            return "must hold [path, value] pairs"
    return None


_STATUSES = frozenset(s.value for s in ExecutionStatus)
_OPTION_FIELDS: dict[str, Check] = {
    "record_history": _flag, "max_steps": _integer, "max_subflow_depth": _natural,
    "max_children": _natural,
}

# per command type: field -> (required, check); absent optional fields and None pass
_FIELDS: dict[str, Mapping[str, tuple[bool, Check]]] = {
    n.CMD_START: {
        "flow_id": (True, _text), "flow_version": (False, _text),
        "idempotency_key": (False, _text), "idempotency_window_ms": (False, _integer),
        "parent_execution_id": (False, _text), "parent_step_id": (False, _text),
        "context": (False, _object), "options": (False, _options),
        "metadata": (False, _metadata), "timeout": (False, _timeout),
        "allow_unpublished": (False, _flag), "depth": (False, _natural),
    },
    n.CMD_RESUME: {"token": (False, _anything), "data": (False, _anything),
                   "email": (False, _object)},
    n.CMD_CANCEL: {"source": (False, _text), "reason": (False, _text)},
    n.CMD_REVOKE_TOKEN: {"token": (True, _text), "reason": (False, _text)},
    n.CMD_CHILD_FINISHED: {
        "child_execution_id": (True, _text), "status": (True, _status),
        "flow_id": (False, _text), "error": (False, _object), "context": (False, _object),
    },
    n.CMD_CHILD_ATTACH: {"child_execution_id": (True, _text), "flow_id": (False, _text)},
    n.CMD_STEP_RESULT: {
        "attempt_id": (True, _text), "result": (False, _step_result),
        "raised": (False, _raised), "writes": (False, _writes),
        "duration_ms": (False, _integer), "timed_out": (False, _flag),
        "timeout_ms": (False, _integer), "child_execution_id": (False, _text),
        "resume_token": (False, _text),
    },
    n.CMD_TIMER: {"due_at": (True, _integer), "kind": (True, _text)},
    **JOB_FIELDS,
    **TRIGGER_FIELDS,
    **FORM_FIELDS,
}


def command_problem(cmd: Command) -> str | None:
    """What makes ``cmd`` malformed, or None. Unknown types are the caller's to refuse."""
    for what, identifier in (("command id", cmd.command_id),
                             ("execution id", cmd.execution_id)):
        if len(identifier) > MAX_ID_CHARS:
            return f"the {what} is {len(identifier)} characters long, over {MAX_ID_CHARS}"
    problem = _entity_problem(cmd)
    if problem is not None:
        return problem
    fields = _FIELDS.get(cmd.type)
    if fields is None:
        return None
    data = cmd.data
    for name, (required, check) in fields.items():
        value = data.get(name)
        if value is None:
            if required:
                return f"{cmd.type} command has no {name}"
            continue
        problem = check(value)
        if problem is not None:
            return f"{cmd.type} command field {name} {problem}"
    if cmd.type == n.CMD_STEP_RESULT:
        return _step_result_problem(cmd.type, data)
    if cmd.type == n.CMD_FORM_SUBMIT:
        return submit_problem(data)
    return None


# entities that are not executions: the prefix of their ids, what they are, and the
# commands they take (their ids are reserved: no execution may have one)
_ENTITIES = ((TRIGGER_PREFIX, "trigger", n.TRIGGER_COMMANDS | {n.CMD_TIMER}),
             (FORM_PREFIX, "form", n.FORM_COMMANDS))
_ENTITY_COMMANDS = n.TRIGGER_COMMANDS | n.FORM_COMMANDS
_PREFIX_CHARS = max(len(TRIGGER_PREFIX), len(FORM_PREFIX))


def _entity_problem(cmd: Command) -> str | None:
    """A command for an execution that addresses an entity's id, or the reverse."""
    if cmd.type not in _ENTITY_COMMANDS and ":" not in cmd.execution_id[:_PREFIX_CHARS]:
        return None  # (most commands: an execution's, to an id without a prefix)
    for prefix, what, commands in _ENTITIES:
        on_entity = cmd.execution_id.startswith(prefix)
        if on_entity and cmd.type not in commands:
            return (f"execution ids starting with {prefix!r} are reserved for {what}s; "
                    f"{cmd.type} cannot address {cmd.execution_id[:100]!r}")
        if not on_entity and cmd.type in commands and cmd.type != n.CMD_TIMER:
            return (f"{cmd.type} must address a {what} ({prefix}<id>), not "
                    f"{cmd.execution_id[:100]!r}")
    return None


def _step_result_problem(type: str, data: dict[str, Any]) -> str | None:
    """What a step result needs beyond its fields' types (the runner provides it)."""
    result = data.get("result")
    if result is None:
        if data.get("raised") is None and not data.get("timed_out"):
            return f"{type} command has no result"
        return None
    if result.child is not None and not data.get("child_execution_id"):
        return f"{type} command starts a child but has no child_execution_id"
    if result.for_signal and not (result.resume_token or data.get("resume_token")):
        return f"{type} command waits for a signal but has no resume token"
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


__all__ = ["MAX_ID_CHARS", "command_problem"]
