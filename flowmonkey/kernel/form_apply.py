"""Appliers of the form events: the only code that changes a ``FormState``.

One small function per event; like the execution appliers they never validate, never
fail on a valid event, and replace containers instead of changing them in place. An
event at or below the state's seq changes nothing (redelivered events are harmless).

A submission's time is its event's timestamp: the windows are built from the events
alone, so replaying a form's events gives the windows its partition decided with.
"""

from __future__ import annotations

from collections.abc import Callable

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.entities import apply_entity, replay_entity
from flowmonkey.kernel.form_state import MAX_ADDRESSES, MAX_DUPLICATES, FormState
from flowmonkey.model.form import ENTITY_PREFIX, RateLimit

FormApplier = Callable[[FormState, Event], None]

ACCEPTED = "accepted"
WINDOWED = frozenset({ACCEPTED, "spam", "invalid", "captcha_failed", "duplicate"})
"""Outcomes that count against the rate limits: every submission that got past them
(a refused one too: spam and invalid submissions are what limits are for). A
rate-limited or a disabled form's submission does not count."""


def is_form_entity(execution_id: str) -> bool:
    return execution_id.startswith(ENTITY_PREFIX)


def windowed(times: tuple[int, ...], now: int, limit: RateLimit) -> tuple[int, ...]:
    """The times still in ``limit``'s window at ``now`` (a submission at the window's
    start has left it)."""
    since = now - limit.window_s * 1000
    if not times or times[0] > since:
        return times
    return tuple(t for t in times if t > since)


def _registered(s: FormState, e: Event) -> None:
    definition = private_copy(e.data["definition"])
    s.definition = definition
    s.tenant_id = definition.get("tenantId")
    s.enabled = bool(definition.get("enabled", True))
    # what a changed definition no longer limits is forgotten at once
    model = s.model()
    limits = model.rate_limit
    if limits is None or limits.per_address is None:
        s.addresses = {}
    if limits is None or limits.per_form is None:
        s.recent = ()
    if model.duplicate_window_s == 0:
        s.duplicates = {}


def _counted(s: FormState, e: Event, outcome: str) -> None:
    now = e.timestamp_ms
    s.counts = {**s.counts, outcome: s.counts.get(outcome, 0) + 1}
    s.last_submitted_at = now
    if outcome not in WINDOWED:
        return
    limits = s.model().rate_limit
    if limits is None:
        return
    if limits.per_form is not None:
        s.recent = (*windowed(s.recent, now, limits.per_form), now)[-limits.per_form.count:]
    key = e.data.get("address_key")
    if limits.per_address is not None and isinstance(key, str):
        s.addresses = _with_address(s.addresses, key, now, limits.per_address)


def _with_address(addresses: dict[str, tuple[int, ...]], key: str, now: int,
                  limit: RateLimit) -> dict[str, tuple[int, ...]]:
    out = dict(addresses)
    times = out.pop(key, ())
    out[key] = (*windowed(times, now, limit), now)[-limit.count:]
    since = now - limit.window_s * 1000
    # least recently seen first: forget those whose window is over, then (past the
    # bound) the least recently seen even if not
    for first in list(out):
        if len(out) <= 1 or (out[first][-1] > since and len(out) <= MAX_ADDRESSES):
            break
        del out[first]
    return out


def _submitted(s: FormState, e: Event) -> None:
    _counted(s, e, ACCEPTED)
    window_s = s.model().duplicate_window_s
    content_hash = e.data.get("content_hash")
    if window_s == 0 or not isinstance(content_hash, str):
        return
    now = e.timestamp_ms
    out = dict(s.duplicates)
    out.pop(content_hash, None)
    for first in list(out):
        if out[first][2] > now and len(out) < MAX_DUPLICATES:
            break
        del out[first]
    out[content_hash] = (e.data["submission_id"], e.data.get("execution_id"),
                         now + window_s * 1000)
    s.duplicates = out


def _rejected(s: FormState, e: Event) -> None:
    _counted(s, e, str(e.data.get("reason")))


FORM_APPLIERS: dict[str, FormApplier] = {
    n.FORM_REGISTERED: _registered,
    n.FORM_SUBMITTED: _submitted,
    n.FORM_REJECTED: _rejected,
}


def _new(event: Event) -> FormState:
    return FormState(entity_id=event.execution_id,
                     form_id=str(event.data["definition"].get("id")), definition={},
                     tenant_id=None, enabled=True, created_at=event.timestamp_ms)


def apply_form(state: FormState | None, event: Event) -> FormState | None:
    """The form's state after ``event`` (a form comes to be with its first
    ``form.registered``; any other event for an unknown form changes nothing)."""
    return apply_entity(state, event, n.FORM_REGISTERED, _new, FORM_APPLIERS)


def replay_form(events: list[Event]) -> FormState | None:
    """One form's state rebuilt from its events."""
    return replay_entity(events, apply_form)


__all__ = ["ACCEPTED", "FORM_APPLIERS", "WINDOWED", "apply_form", "is_form_entity",
           "replay_form", "windowed"]
