"""What a handler returns (FEATURES A5). ``Result`` builds each outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Outcome = Literal["success", "failure", "wait"]


@dataclass(frozen=True, slots=True)
class StepError:
    code: str
    message: str
    details: Any = None
    retryable: bool | None = None


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """Start a child execution (the ``sub-flow`` handler's outcome)."""

    flow_id: str
    input: Any
    wait: bool = True
    flow_version: str | None = None


@dataclass(frozen=True, slots=True)
class HandlerEvent:
    """A fact a step attempt reports beside its outcome, recorded as an event on the
    execution: ``type`` is an event name the kernel allows for the step's type (the
    ``email-reply`` step's ``email.sent``), ``data`` what the event says. Any other
    type is refused (see :mod:`flowmonkey.kernel.step_events`)."""

    type: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StepResult:
    """A handler's outcome. Build it with :class:`Result`; plain dicts in the JSON
    shape (``{"outcome": "success", "output": …}``) are accepted too.

    ``has_next_step`` says the handler chose the next step itself (a dict's
    ``nextStepOverride``, on success or, once retries are spent, on failure): then
    ``next_step`` replaces the step's transition, and ``None`` there means "no next step"
    (success completes, failure fails). Without it the transitions decide.

    ``events``: facts the attempt reports (:class:`HandlerEvent`), recorded on the
    execution before its ``step.completed``.
    """

    outcome: Outcome
    output: Any = None
    error: StepError | None = None
    next_step: str | None = None
    has_next_step: bool = False
    wait_ms: int | None = None
    wake_at: datetime | None = None
    wait_reason: str | None = None
    resume_token: str | None = None
    signal_timeout_ms: int | None = None
    for_signal: bool = False
    child: ChildSpec | None = None
    events: tuple[HandlerEvent, ...] = ()


class Result:
    """Constructors for every handler outcome."""

    @staticmethod
    def success(output: Any = None, next_step: str | None = None, *,
                events: tuple[HandlerEvent, ...] = ()) -> StepResult:
        return StepResult("success", output=output, next_step=next_step,
                          has_next_step=next_step is not None, events=events)

    @staticmethod
    def failure(code: str, message: str, details: Any = None) -> StepResult:
        return StepResult("failure", error=StepError(code, message, details))

    @staticmethod
    def wait(duration_ms: int, reason: str | None = None, output: Any = None) -> StepResult:
        if duration_ms < 0:
            raise ValueError("wait duration_ms must be >= 0")
        return StepResult("wait", output=output, wait_ms=int(duration_ms), wait_reason=reason)

    @staticmethod
    def wait_until(when: datetime, reason: str | None = None, output: Any = None) -> StepResult:
        if when.tzinfo is None:
            raise ValueError("wait_until needs a timezone-aware datetime (UTC)")
        return StepResult("wait", output=output, wake_at=when, wait_reason=reason)

    @staticmethod
    def wait_for_signal(
        reason: str | None = None,
        resume_token: str | None = None,
        timeout_ms: int | None = None,
        output: Any = None,
        *,
        events: tuple[HandlerEvent, ...] = (),
    ) -> StepResult:
        return StepResult("wait", output=output, wait_reason=reason, resume_token=resume_token,
                          signal_timeout_ms=timeout_ms, for_signal=True, events=events)

    @staticmethod
    def start_child(
        flow_id: str, input: Any, *, wait: bool = True, flow_version: str | None = None
    ) -> StepResult:
        """Start a child execution; with ``wait`` the step waits for the child to end."""
        return StepResult("wait" if wait else "success",
                          child=ChildSpec(flow_id, input, wait, flow_version))


class InvalidResult(ValueError):
    """A handler returned something that is not a step result."""


def coerce_result(value: object) -> StepResult:
    """Accept a StepResult or its dict shape; refuse anything else clearly."""
    result = _coerce(value)
    token = result.resume_token
    if token is not None and (not isinstance(token, str) or "\x00" in token):
        # the token is stored as text (PostgreSQL's text cannot hold U+0000) and typed
        # back by whoever resumes: a string of printable characters
        raise InvalidResult("the resume token must be a string without NUL characters")
    return result


def _coerce(value: object) -> StepResult:
    if isinstance(value, StepResult):
        return value
    if isinstance(value, Mapping):
        outcome = value.get("outcome")
        if outcome == "success":
            has, override = _override(value)
            return StepResult("success", output=value.get("output"), next_step=override,
                              has_next_step=has)
        if outcome == "failure":
            err = value.get("error") or value.get("output") or {}
            if not isinstance(err, Mapping):
                err = {}
            has, override = _override(value)
            return StepResult("failure", error=StepError(
                str(err.get("code") or "STEP_FAILED"), str(err.get("message") or "step failed"),
                err.get("details")), next_step=override, has_next_step=has)
        if outcome in ("wait", "waiting"):
            wake = value.get("wakeAt")
            wait_ms = value.get("waitMs")
            token = value.get("resumeToken")
            if isinstance(wake, int | float) and not isinstance(wake, bool):
                from datetime import UTC
                return StepResult("wait", output=value.get("output"),
                                  wake_at=datetime.fromtimestamp(wake / 1000, UTC),
                                  wait_reason=value.get("waitReason"))
            return StepResult("wait", output=value.get("output"),
                              wait_reason=value.get("waitReason"), resume_token=token,
                              signal_timeout_ms=int(wait_ms) if wait_ms else None,
                              for_signal=True)
    raise InvalidResult(
        f"handler returned {type(value).__name__}, not a step result; "
        "return Result.success(...), Result.failure(...) or a Result.wait*(...)"
    )


def _override(value: Mapping[str, Any]) -> tuple[bool, str | None]:
    """``(present, target)`` of a dict result's ``nextStepOverride`` (or ``next_step``).

    The next step is the override whenever the key is present, so a present ``null``
    is an override too (docs/compatibility.md): it leads nowhere, which
    completes the execution on success and fails it on failure, whatever the step's
    transitions say. Only an absent key leaves the transitions in charge.
    """
    for key in ("nextStepOverride", "next_step"):
        if key in value:
            target = value[key]
            if target is not None and not isinstance(target, str):
                raise InvalidResult(
                    f"nextStepOverride must be a step id or null, not {type(target).__name__}")
            return True, target
    return False, None
