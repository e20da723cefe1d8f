"""What makes a job command well-formed (merged into ``kernel.command_checks``):
types, and bounds on everything a worker sends that events and views carry."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from flowmonkey.events import names as n

Check = Callable[[Any], str | None]

MAX_JOB_ID_CHARS = 100
MAX_WORKER_ID_CHARS = 200
MAX_MESSAGE_CHARS = 500  # a progress message, a release reason


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text_up_to(limit: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, not {_kind(value)}"
        if len(value) > limit:
            return f"is {len(value)} characters long, over {limit}"
        if "\x00" in value:
            # kept as text by the projections, which cannot hold U+0000
            return "contains a NUL character (U+0000)"
        return None
    return check


def _identifier(value: Any) -> str | None:
    problem = _text_up_to(MAX_JOB_ID_CHARS)(value)
    if problem is None and not value:
        return "must not be empty"
    return problem


def _natural(value: Any) -> str | None:
    if type(value) is not int:
        return f"must be an integer, not {_kind(value)}"
    return None if value >= 0 else "must not be negative"


def _positive(value: Any) -> str | None:
    if type(value) is not int:
        return f"must be an integer, not {_kind(value)}"
    return None if value > 0 else "must be positive"


def _percent(value: Any) -> str | None:
    if type(value) not in (int, float):
        return f"must be a number, not {_kind(value)}"
    if not (math.isfinite(value) and 0 <= value <= 100):
        return f"must be between 0 and 100, not {value!r}"
    return None


def _anything(value: Any) -> str | None:
    return None


def _error(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"must be an object, not {_kind(value)}"
    if not isinstance(value.get("code"), str) or not isinstance(value.get("message"), str):
        return "must have a string code and message"
    if not value["code"] or len(value["code"]) > MAX_JOB_ID_CHARS:
        return f"code must be 1 to {MAX_JOB_ID_CHARS} characters"
    return None


def _writes(value: Any) -> str | None:
    if not isinstance(value, list | tuple):
        return f"must be a list, not {_kind(value)}"
    for write in value:
        if not isinstance(write, list | tuple) or len(write) != 2 or \
                not isinstance(write[0], str):
            return "must hold [path, value] pairs"
    return None


def _optional_step_id(value: Any) -> str | None:
    if value is None:
        return None
    return _text_up_to(1_000)(value)


_HELD = {"job_id": (True, _identifier), "instance_id": (True, _identifier)}

JOB_FIELDS: dict[str, Mapping[str, tuple[bool, Check]]] = {
    n.CMD_JOB_CREATE: {
        "attempt_id": (True, _text_up_to(1_000)), "job_type": (True, _text_up_to(1_000)),
        "timeout_ms": (True, _positive), "heartbeat_ms": (True, _positive),
    },
    n.CMD_JOB_CLAIM: {"job_id": (True, _identifier),
                      "worker_id": (True, _text_up_to(MAX_WORKER_ID_CHARS))},
    n.CMD_JOB_HEARTBEAT: _HELD,
    n.CMD_JOB_PROGRESS: {**_HELD, "percent": (True, _percent),
                         "message": (False, _text_up_to(MAX_MESSAGE_CHARS))},
    # (the data's size is checked by the decider, against the execution's limits)
    n.CMD_JOB_CHECKPOINT: {**_HELD, "data": (False, _anything)},
    n.CMD_JOB_COMPLETE: {**_HELD, "output": (False, _anything), "writes": (False, _writes),
                         "duration_ms": (False, _natural),
                         "next_step": (False, _optional_step_id)},
    n.CMD_JOB_FAIL: {**_HELD, "error": (True, _error), "duration_ms": (False, _natural)},
    n.CMD_JOB_RELEASE: {**_HELD, "reason": (False, _text_up_to(MAX_MESSAGE_CHARS))},
}
