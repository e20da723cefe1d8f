"""What a trigger definition needs beyond its model's validation, and the fields of the
trigger commands (checked before any decider reads them, as ``command_checks`` does).

``trigger_problems`` is what registration (the engine, file loading) and the kernel's
``trigger.register`` both refuse: a cron expression or timezone that cannot be used,
and an event trigger that starts the flow it listens to (a loop by construction; loops
through other flows are bounded by ``MAX_TRIGGER_DEPTH``, kernel/triggers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.kernel import cron
from flowmonkey.model.trigger import Trigger

Check = Callable[[Any], str | None]

SOURCE_KINDS = frozenset({"webhook", "event", "topic", "manual", "schedule"})
MAX_SOURCE_KEY_CHARS = 512


def trigger_problems(trigger: Trigger) -> list[tuple[str, str]]:
    """``(field, problem)`` for each problem of a valid model's settings."""
    problems: list[tuple[str, str]] = []
    if trigger.schedule is not None:
        try:
            cron.check_cron(trigger.schedule.cron)
        except cron.CronError as exc:
            problems.append(("schedule.cron", str(exc)))
        try:
            cron.check_timezone(trigger.schedule.timezone)
        except cron.CronError as exc:
            problems.append(("schedule.timezone", str(exc)))
    if trigger.event is not None and trigger.event.flow_id == trigger.flow_id:
        problems.append(("event.flowId", f"the trigger starts flow {trigger.flow_id!r} on an "
                         "event of that same flow: every run would start another"))
    return problems


def describe(trigger_id: str, problems: list[tuple[str, str]]) -> str:
    return f"trigger {trigger_id!r}: " + "; ".join(f"{f}: {p}" for f, p in problems)


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {_kind(value)}"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"must be an object, not {_kind(value)}"


def _source(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"must be an object, not {_kind(value)}"
    if value.get("kind") not in SOURCE_KINDS:
        return f"kind must be one of {', '.join(sorted(SOURCE_KINDS))}"
    key = value.get("key")
    if not isinstance(key, str) or not key:
        return "key must be a non-empty string"
    if len(key) > MAX_SOURCE_KEY_CHARS:
        return f"key is {len(key)} characters long, over {MAX_SOURCE_KEY_CHARS}"
    return None


def _failure(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"must be an object, not {_kind(value)}"
    if not isinstance(value.get("code"), str) or not isinstance(value.get("message"), str):
        return "must have a string code and message"
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


TRIGGER_FIELDS: dict[str, Mapping[str, tuple[bool, Check]]] = {
    n.CMD_TRIGGER_REGISTER: {"definition": (True, _object), "by": (False, _text)},
    n.CMD_TRIGGER_ENABLE: {"by": (False, _text), "reason": (False, _text)},
    n.CMD_TRIGGER_DISABLE: {"by": (False, _text), "reason": (False, _text)},
    n.CMD_TRIGGER_FIRE: {"source": (True, _source), "arrival": (False, _object),
                         "failure": (False, _failure)},
    n.CMD_TRIGGER_RUN_ENDED: {"execution_id": (True, _text), "status": (True, _text)},
}


__all__ = ["TRIGGER_FIELDS", "describe", "trigger_problems"]
