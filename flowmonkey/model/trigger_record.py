"""A trigger as the projection keeps it: its definition, whether it is enabled, what
it did (fired, failed, skipped counts, the last fire and failure) and, for a schedule,
its next tick; derived from the trigger entity's ``trigger.*`` events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowmonkey.model.base import FrozenModel
from flowmonkey.model.trigger import Trigger, TriggerKind


class TriggerRecord(FrozenModel):
    """``definition`` is the trigger as registered (camelCase, as written; a webhook's
    secret is only the vault secret's name). ``next_fire_at``: a schedule's next tick
    while it is enabled, else None."""

    id: str
    kind: TriggerKind
    flow_id: str
    flow_version: str | None = None
    tenant_id: str | None = None
    enabled: bool
    definition: dict[str, Any]
    fired: int = 0
    failed: int = 0
    skipped: int = 0
    last_fired_at: datetime | None = None
    last_execution_id: str | None = None
    last_failed_at: datetime | None = None
    last_failure: dict[str, Any] | None = None
    next_fire_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    def trigger(self) -> Trigger:
        """The definition as a :class:`Trigger`."""
        return Trigger.model_validate(self.definition)
