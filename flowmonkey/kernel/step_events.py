"""Step events: facts a built-in handler reports beside its outcome, and the inbound
email a resume answers, recorded as events on the execution.

Most of an execution's history is the kernel's own telling (``step.started``,
``step.completed``, ``execution.waiting``). A few facts happen inside a handler, out of
the kernel's sight: the ``email-reply`` handler's mail was accepted by the SMTP server,
with the ``Message-ID`` it was sent under. The handler reports them on its result
(``StepResult.events``, each a :class:`~flowmonkey.model.result.HandlerEvent`), and the
kernel records them. Three rules keep this small and the log honest:

* **allow-listed**: :data:`ALLOWED` names each event type a result may carry, the one
  step type that may report it (``email.sent`` from an ``email-reply`` step, whatever
  handler serves that type) and a pure function that builds the event's data from what
  the handler gave: known fields only, each checked and bounded. A result carrying
  anything else is refused by the runner before it becomes a command (the attempt
  fails with ``HANDLER_ERROR`` naming the type: :func:`step_event_problem`), and the
  kernel skips it should one arrive anyway;
* **recorded first**: before the attempt's ``step.completed``, in the order given,
  since they happened during the attempt (a mail sent by a step that then fails was
  still sent);
* **no state**: their appliers change nothing; they are facts for the history, the
  projection and listeners (``email.sent`` to audit what was mailed to whom).

``email.received`` comes the other way: a ``execution.resume`` command whose data
carries ``email`` (``{from, subject}``; the inbound email endpoint sets it when a reply
resumes a waiting ``email-reply`` step) records it once the resume is accepted, after
``token.used`` and before ``execution.resumed`` (:func:`email_received_data`). A
refused resume records nothing.

Everything here is pure: data in, data out, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.kernel.decision import Txn
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.model.flow import Step
from flowmonkey.model.result import HandlerEvent

#: at most this many recipients named in one ``email.sent``
MAX_RECIPIENTS = 50
#: RFC 5321's limit of an address (local part 64, domain 255, and the "@")
MAX_ADDRESS_CHARS = 320
#: RFC 5322's limit of a header line, which a subject or a message id fits in
MAX_HEADER_CHARS = 998
MAX_STEP_EVENTS = 4

DataBuilder = Callable[[Step, Mapping[str, Any]], dict[str, Any] | str]
"""The event's data from what the handler gave, or a message saying what is wrong."""


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > limit:
        raise ValueError(f"{name} must be a non-empty string of at most {limit} characters "
                         "without NUL")
    return value


def _email_sent(step: Step, given: Mapping[str, Any]) -> dict[str, Any] | str:
    try:
        to = given.get("to")
        if not isinstance(to, list | tuple) or not 1 <= len(to) <= MAX_RECIPIENTS:
            raise ValueError(f"to must be a list of 1 to {MAX_RECIPIENTS} addresses")
        return {"step_id": step.id,
                "to": [_text(address, "each address", MAX_ADDRESS_CHARS) for address in to],
                "subject": _text(given.get("subject"), "subject", MAX_HEADER_CHARS),
                "message_id": _text(given.get("message_id"), "message_id",
                                    MAX_HEADER_CHARS)}
    except ValueError as exc:
        return str(exc)


ALLOWED: dict[str, tuple[str, DataBuilder]] = {
    n.EMAIL_SENT: ("email-reply", _email_sent),
}
"""Event type -> (the step type that may report it, its data builder)."""


def _checked(step: Step, event: HandlerEvent) -> dict[str, Any] | str:
    allowed = ALLOWED.get(event.type)
    if allowed is None or allowed[0] != step.type:
        may = sorted(t for t, (step_type, _) in ALLOWED.items() if step_type == step.type)
        return (f"a {step.type!r} step may not report a {event.type!r} event "
                f"(it may report: {', '.join(may) or 'none'})")
    if not isinstance(event.data, Mapping):
        return f"the {event.type!r} event's data must be an object"
    return allowed[1](step, event.data)


def step_event_problem(step: Step, events: tuple[HandlerEvent, ...]) -> str | None:
    """What makes ``events`` (a result's, for ``step``) unfit to record, or None."""
    if len(events) > MAX_STEP_EVENTS:
        return f"a step result may carry at most {MAX_STEP_EVENTS} events, not {len(events)}"
    for event in events:
        if not isinstance(event, HandlerEvent):
            return f"step result events must be HandlerEvent, not {type(event).__name__}"
        checked = _checked(step, event)
        if isinstance(checked, str):
            return f"step {step.id!r}: {checked}"
    return None


def record_step_events(tx: Txn, st: ExecutionState, step: Step,
                       events: tuple[HandlerEvent, ...]) -> None:
    """Emit the allowed ``events`` of an attempt of ``step`` (the runner refused any
    others; one that arrives anyway is skipped)."""
    for event in events[:MAX_STEP_EVENTS]:
        checked = _checked(step, event) if isinstance(event, HandlerEvent) else "not an event"
        if not isinstance(checked, str):
            tx.emit(st, event.type, checked)


def email_received_data(step: Step, email: Any) -> dict[str, Any] | None:
    """The ``email.received`` data of a resume command's ``email``, or None when it
    carries none (or nothing usable: it is a record, and never stops the resume)."""
    if not isinstance(email, Mapping):
        return None
    data: dict[str, Any] = {"step_id": step.id}
    for name, limit in (("from", MAX_ADDRESS_CHARS), ("subject", MAX_HEADER_CHARS)):
        value = email.get(name)
        data[name] = value[:limit].replace("\x00", "") if isinstance(value, str) else None
    return data


__all__ = ["ALLOWED", "email_received_data", "record_step_events", "step_event_problem"]
