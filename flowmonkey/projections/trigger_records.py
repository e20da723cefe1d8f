"""Trigger records: every registered trigger, folded from its ``trigger.*`` events.

The one place both projection backends derive their triggers from (``memory.py``
keeps the entries in a dict, ``postgres.py`` in ``fm_triggers``, see
``trigger_sql.py``). A trigger's events carry ``trigger:<id>`` as their execution id
(:func:`flowmonkey.model.trigger.entity_id`), with a seq of their own, so the
projections gate them by seq like an execution's; they never become executions.

Like every applier, :func:`fold_trigger` never changes an entry in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event, ms_to_datetime
from flowmonkey.kernel.copies import private_copy
from flowmonkey.model.trigger import ENTITY_PREFIX, Trigger, TriggerKind
from flowmonkey.model.trigger_record import TriggerRecord

NextFire = Callable[[Trigger, int], int | None]
"""A schedule's next tick after an epoch ms (None: none), see :func:`next_fire_at`."""


@dataclass(slots=True)
class TriggerEntry:
    """A trigger as a projection stores it: points in time as epoch ms."""

    id: str
    kind: str
    flow_id: str
    tenant_id: str | None
    enabled: bool
    definition: dict[str, Any]
    created_at: int
    updated_at: int
    flow_version: str | None = None
    fired: int = 0
    failed: int = 0
    skipped: int = 0
    last_fired_at: int | None = None
    last_execution_id: str | None = None
    last_failed_at: int | None = None
    last_failure: dict[str, Any] | None = None
    next_fire_at: int | None = None

    def to_record(self) -> TriggerRecord:
        """The public record, the caller's own (values copied)."""
        return TriggerRecord.model_construct(
            id=self.id, kind=cast(TriggerKind, self.kind), flow_id=self.flow_id,
            flow_version=self.flow_version,
            tenant_id=self.tenant_id, enabled=self.enabled,
            definition=private_copy(self.definition), fired=self.fired, failed=self.failed,
            skipped=self.skipped, last_fired_at=_maybe(self.last_fired_at),
            last_execution_id=self.last_execution_id,
            last_failed_at=_maybe(self.last_failed_at),
            last_failure=private_copy(self.last_failure),
            next_fire_at=_maybe(self.next_fire_at), created_at=ms_to_datetime(self.created_at),
            updated_at=ms_to_datetime(self.updated_at))


def _maybe(ms: int | None) -> Any:
    return ms_to_datetime(ms) if ms is not None else None


def trigger_id_of(event: Event) -> str | None:
    """The trigger a trigger entity's event is about; None for an execution's."""
    if not event.execution_id.startswith(ENTITY_PREFIX):
        return None
    return event.execution_id[len(ENTITY_PREFIX):]


def next_fire_at(trigger: Trigger, after_ms: int) -> int | None:
    """A schedule's next tick after ``after_ms`` (what the kernel arms its timer for);
    None for other kinds, or when its cron cannot be evaluated."""
    if trigger.schedule is None:
        return None
    from flowmonkey.kernel import cron

    try:
        return cron.next_after(trigger.schedule.cron, trigger.schedule.timezone, after_ms)
    except cron.CronError:  # a definition the kernel refused too: no next tick to show
        return None


def fold_trigger(entry: TriggerEntry | None, event: Event,
                 next_fire: NextFire = next_fire_at) -> TriggerEntry | None:
    """``entry`` after ``event`` (one of its trigger's fresh events). Events of a
    trigger never registered change nothing."""
    kind, d, at = event.type, event.data, event.timestamp_ms
    if kind == n.TRIGGER_REGISTERED:
        raw = d.get("definition")
        if not isinstance(raw, dict):
            return entry
        try:
            trigger = Trigger.model_validate(raw)
        except ValueError:
            return entry  # a definition this version cannot read: keep the last one
        enabled = trigger.enabled if entry is None else entry.enabled
        base = entry if entry is not None else TriggerEntry(
            id=trigger.id, kind=trigger.kind, flow_id=trigger.flow_id,
            tenant_id=trigger.tenant_id, enabled=enabled, definition={}, created_at=at,
            updated_at=at)
        return replace(base, kind=trigger.kind, flow_id=trigger.flow_id,
                       flow_version=trigger.flow_version, tenant_id=trigger.tenant_id,
                       definition=private_copy(raw), updated_at=at,
                       next_fire_at=_told(d, lambda: next_fire(trigger, at))
                       if enabled and trigger.schedule is not None else None)
    if entry is None:
        return None
    change = _CHANGES.get(kind)
    changes = change(entry, d, at) if change is not None else {}
    after = replace(entry, updated_at=at, **changes)
    if after.kind == "schedule":
        after.next_fire_at = _told(d, lambda: _next(after, at, next_fire)) \
            if after.enabled else None
    return after


def _told(d: dict[str, Any], otherwise: Callable[[], int | None]) -> int | None:
    """The next tick the kernel put in the event (it armed its timer for it), else
    computed from the definition (events written before the kernel told it)."""
    told = d.get("next_fire_at")
    if isinstance(told, int) and not isinstance(told, bool):
        return told
    return otherwise()


def _next(entry: TriggerEntry, at: int, next_fire: NextFire) -> int | None:
    try:
        trigger = Trigger.model_validate(entry.definition)
    except ValueError:
        return None
    return next_fire(trigger, at)


def _fired(entry: TriggerEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {"fired": entry.fired + 1, "last_fired_at": at,
            "last_execution_id": d.get("execution_id")}


def _failed(entry: TriggerEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    return {"failed": entry.failed + 1, "last_failed_at": at,
            "last_failure": {"code": d.get("code"), "message": d.get("message")}}


def _skipped(entry: TriggerEntry, d: dict[str, Any], at: int) -> dict[str, Any]:
    count = d.get("count", 1)
    return {"skipped": entry.skipped + (count if isinstance(count, int) and count > 0 else 1)}


_CHANGES: dict[str, Callable[[TriggerEntry, dict[str, Any], int], dict[str, Any]]] = {
    n.TRIGGER_ENABLED: lambda entry, d, at: {"enabled": True},
    n.TRIGGER_DISABLED: lambda entry, d, at: {"enabled": False},
    n.TRIGGER_FIRED: _fired,
    n.TRIGGER_FAILED: _failed,
    n.TRIGGER_SKIPPED: _skipped,
}


def summary_matches(entry: TriggerEntry, *, tenant_id: str | None, kind: str | None,
                    flow_id: str | None, enabled: bool | None) -> bool:
    """Whether ``entry`` passes a listing's filters (None: any)."""
    return ((tenant_id is None or entry.tenant_id == tenant_id)
            and (kind is None or entry.kind == kind)
            and (flow_id is None or entry.flow_id == flow_id)
            and (enabled is None or entry.enabled == enabled))
