"""What a job's handler did, as the command that ends the job: ``job.complete`` for
a success (its output, context writes and chosen next step), ``job.fail`` for a
failure result, an exception or a result a job cannot have."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flowmonkey.errors import FlowMonkeyError, InputValidationError
from flowmonkey.events import names as n
from flowmonkey.kernel.copies import private_copy
from flowmonkey.model.result import InvalidResult, coerce_result

log = logging.getLogger("flowmonkey.jobs")

HANDLER_ERROR = "HANDLER_ERROR"

Outcome = tuple[str, dict[str, Any]]


def returned(raw: Any, writes: Sequence[tuple[str, Any]], duration_ms: int) -> Outcome:
    """The command for what the handler returned."""
    try:
        result = coerce_result(raw)
    except InvalidResult as exc:
        return failed(HANDLER_ERROR, str(exc), duration_ms)
    if result.outcome == "failure":
        error = result.error
        code = error.code if error is not None else HANDLER_ERROR
        message = error.message if error is not None else "the handler failed"
        details = error.details if error is not None else None
        try:
            details = private_copy(details)
        except Exception as exc:
            details = {"unstorable": f"{type(exc).__name__}: {exc}"}
        return failed(code, message, duration_ms, details)
    if result.outcome != "success":
        return failed(HANDLER_ERROR, f"a stateful handler's result is a success or a failure, "
                      f"not {result.outcome!r}", duration_ms)
    try:
        data: dict[str, Any] = {"output": private_copy(result.output),
                                "duration_ms": duration_ms}
        if writes:
            data["writes"] = [[path, private_copy(value)] for path, value in writes]
    except Exception as exc:  # what the log cannot hold fails the job, saying why
        return failed(HANDLER_ERROR, f"the handler's output cannot be stored: "
                      f"{type(exc).__name__}: {exc}", duration_ms)
    if result.has_next_step:
        data["next_step"] = result.next_step
    return n.CMD_JOB_COMPLETE, data


def raised(exc: Exception, handler_type: str, duration_ms: int) -> Outcome:
    """The command for what the handler raised."""
    if isinstance(exc, InputValidationError):
        return failed("INPUT_ERROR", exc.message, duration_ms)
    if isinstance(exc, FlowMonkeyError):
        return failed(exc.code, exc.message, duration_ms)
    # secrets could sit in exception text: the log gets the type, not the message
    log.info("job handler %r raised %s", handler_type, type(exc).__name__)
    return failed(HANDLER_ERROR, str(exc) or type(exc).__name__, duration_ms)


def failed(code: str, message: str, duration_ms: int, details: Any = None) -> Outcome:
    error: dict[str, Any] = {"code": code or HANDLER_ERROR, "message": message}
    if details is not None:
        error["details"] = details
    return n.CMD_JOB_FAIL, {"error": error, "duration_ms": duration_ms}
