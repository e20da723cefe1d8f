"""Context limits (FEATURES A7), checked on every write to an execution's context.

``max_size_bytes`` bounds one value's JSON size, ``max_depth`` its nesting (``{}`` and
``[]`` are depth 1), ``max_keys`` the context's top-level keys, and
``max_total_size_bytes`` the whole context. The limits guard every write (handler
helpers, step outputs and resume data), and their codes reach the execution instead
of turning into ``HANDLER_ERROR``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from flowmonkey.kernel.copies import private_copy
from flowmonkey.model.limits import ContextLimits

CONTEXT_VALUE_TOO_LARGE = "CONTEXT_VALUE_TOO_LARGE"
CONTEXT_SIZE_LIMIT = "CONTEXT_SIZE_LIMIT"
CONTEXT_KEY_LIMIT = "CONTEXT_KEY_LIMIT"
CONTEXT_NESTING_LIMIT = "CONTEXT_NESTING_LIMIT"
INVALID_VALUE = "INVALID_VALUE"
# sub-flow bounds (model.limits: DEFAULT_MAX_SUBFLOW_DEPTH, DEFAULT_MAX_CHILDREN),
# step failures checked when a child would start
SUBFLOW_DEPTH_EXCEEDED = "SUBFLOW_DEPTH_EXCEEDED"
CHILDREN_LIMIT_EXCEEDED = "CHILDREN_LIMIT_EXCEEDED"


class LimitViolation(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encoded_size(value: Any) -> int:
    """Bytes of the value as JSON; non-JSON values are refused (the log stores JSON)."""
    try:
        return len(orjson.dumps(value))
    except TypeError as exc:
        raise LimitViolation(INVALID_VALUE, f"value is not JSON-serializable: {exc}") from None


def depth_of(value: Any, limit: int) -> int:
    """Nesting depth; stops descending once past ``limit`` (enough to report it)."""
    children: Iterable[Any]
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return 0
    deepest = 0
    if limit > 0:
        for child in children:
            if isinstance(child, dict | list):
                deepest = max(deepest, depth_of(child, limit - 1))
    return deepest + 1


def check_value(name: str, value: Any, limits: ContextLimits) -> int:
    """Check one value written at ``name``; returns its JSON size."""
    size = encoded_size(value)
    if size > limits.max_size_bytes:
        raise LimitViolation(
            CONTEXT_VALUE_TOO_LARGE,
            f"context value for {name!r} is {size} bytes, over the limit of "
            f"{limits.max_size_bytes} bytes",
        )
    # Every nesting level adds at least two bytes ("{}" or "[]"), so a value shorter
    # than 2 * (max_depth + 1) bytes cannot be too deep: skip the walk (most values).
    if size < 2 * (limits.max_depth + 1):
        return size
    depth = depth_of(value, limits.max_depth + 1)
    if depth > limits.max_depth:
        raise LimitViolation(
            CONTEXT_NESTING_LIMIT,
            f"context value for {name!r} nests {depth} levels deep, over the limit of "
            f"{limits.max_depth}",
        )
    return size


def check_context(context: dict[str, Any], limits: ContextLimits) -> None:
    """Check the whole context after a write."""
    if len(context) > limits.max_keys:
        raise LimitViolation(
            CONTEXT_KEY_LIMIT,
            f"context has {len(context)} keys, over the limit of {limits.max_keys}",
        )
    size = encoded_size(context)
    if size > limits.max_total_size_bytes:
        raise LimitViolation(
            CONTEXT_SIZE_LIMIT,
            f"context would be {size} bytes, over the total limit of "
            f"{limits.max_total_size_bytes} bytes",
        )


def started_context(value: Any) -> dict[str, Any]:
    """The context of an execution something other than a caller starts (a trigger's
    arrival, a form's submission): ``value`` as an object (None: empty; anything else
    wrapped as ``{"value": ...}``), a private copy, within the default limits (raises
    :class:`LimitViolation`)."""
    if value is None:
        value = {}
    context: dict[str, Any] = private_copy(value if isinstance(value, dict)
                                           else {"value": value})
    limits = ContextLimits()
    for name, item in context.items():
        check_value(name, item, limits)
    check_context(context, limits)
    return context


def check_writes(
    context: dict[str, Any], writes: list[tuple[str, Any]], limits: ContextLimits
) -> None:
    """Check values about to be written and the context they would produce."""
    from flowmonkey.kernel.paths import set_path

    if not writes:
        return
    for path, value in writes:
        check_value(path, value, limits)
        context = set_path(context, path, value)
    check_context(context, limits)
