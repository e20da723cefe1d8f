"""FlowMonkey's own error hierarchy. Library exceptions never leak through the public API."""

from __future__ import annotations

from typing import Any


class FlowMonkeyError(Exception):
    """Base class of every error FlowMonkey raises."""

    code: str = "FLOWMONKEY_ERROR"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details


class FlowValidationError(FlowMonkeyError):
    """A flow definition is invalid; the message names the flow, step and field.

    Fields are named as users write them, with their camelCase JSON names
    (``transitions.onSuccess``, ``pipes[p1].tableId``, ``retry.maxAttempts``).
    """

    code = "FLOW_INVALID"

    def __init__(
        self,
        message: str,
        *,
        flow_id: str | None = None,
        step_id: str | None = None,
        field: str | None = None,
        problems: list[str] | None = None,
        salvaged: Any = None,
    ) -> None:
        super().__init__(message, flow_id=flow_id, step_id=step_id, field=field)
        self.flow_id = flow_id
        self.step_id = step_id
        self.field = field
        self.problems = problems or [message]
        # When the definition did not parse: the flow with its invalid fields set aside
        # (a Flow, or None when a required field is invalid), for the checks that need
        # a parsed flow (steps, transitions, handler types, configs) to add their
        # problems, so that every problem is reported at once.
        self.salvaged = salvaged


class FlowNotFoundError(FlowMonkeyError):
    code = "FLOW_NOT_FOUND"


class HandlerNotFoundError(FlowMonkeyError):
    code = "HANDLER_NOT_FOUND"


class RegistrationError(FlowMonkeyError):
    """Registering something twice, or something that conflicts with what exists."""

    code = "REGISTRATION_ERROR"


class ExecutionNotFoundError(FlowMonkeyError):
    code = "EXECUTION_NOT_FOUND"


class CommandRejected(FlowMonkeyError):
    """The engine refused a command (the ``command.rejected`` event says why)."""

    code = "COMMAND_REJECTED"


class ResumeTokenError(CommandRejected):
    """A resume token was wrong, already used, expired, revoked or for another execution."""

    code = "INVALID_TOKEN"


class ContextLimitExceeded(FlowMonkeyError):
    """A context write broke one of the execution's context limits."""

    code = "CONTEXT_SIZE_LIMIT"


class InputValidationError(FlowMonkeyError):
    """A handler's input did not validate against its declared model."""

    code = "INPUT_ERROR"


class UnstorableValueError(FlowMonkeyError):
    """A value given to the engine (a context, resume data, metadata) that the log or
    the projection cannot carry (a lone surrogate, a NUL, an integer past 64 bits,
    NaN, nesting past the limits); ``field`` names its path. Nothing was sent."""

    code = "VALIDATION_ERROR"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class HandlerTimeout(FlowMonkeyError):
    code = "HANDLER_TIMEOUT"


class WaitTimeout(FlowMonkeyError):
    """``Engine.wait`` gave up before the execution reached a resting status."""

    code = "WAIT_TIMEOUT"


class LogError(FlowMonkeyError):
    """The log backend failed or was used wrongly (unknown topic, locked data dir, …)."""

    code = "LOG_ERROR"


class DecodeError(FlowMonkeyError):
    """A record could not be decoded into a command or an event."""

    code = "DECODE_ERROR"


class TableError(FlowMonkeyError):
    """A data-store table operation failed (unknown table, bad column, bad row)."""

    code = "TABLE_ERROR"


class JobSupersededError(FlowMonkeyError):
    """A stateful handler's job is no longer this worker's: its lease ran out and
    another worker claimed it (or the claim was released). Raised by
    ``params.job.checkpoint()`` and ``assert_active()``; the handler should stop, since
    nothing it sends about the job is accepted any more."""

    code = "JOB_SUPERSEDED"


class JobCancelledError(FlowMonkeyError):
    """A stateful handler's job was cancelled (its execution was cancelled, timed out
    or failed). Raised by ``params.job.checkpoint()`` and ``assert_active()``; the
    worker also cancels the handler's task."""

    code = "JOB_CANCELLED"
