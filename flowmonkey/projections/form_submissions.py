"""Form submissions: one record per submission, taken from the ``form.submitted`` or
``form.rejected`` event its form's partition decided it with.

The one place both projection backends derive their submissions from (``memory.py``
keeps the entries in a dict, ``postgres.py`` in ``fm_form_submissions``, see
``form_submission_sql.py``). A form's events carry ``form:<id>`` as their execution
id (:func:`flowmonkey.model.form.entity_id`) with a seq of their own, so the
projections gate them by seq like an execution's; they never become executions. A
submission is decided once: a record is written once and never changed (the first
of an id wins, should a caller reuse one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event, ms_to_datetime
from flowmonkey.kernel.copies import private_copy
from flowmonkey.model.form import ENTITY_PREFIX
from flowmonkey.model.form_submission import (
    SUBMISSION_STATUSES,
    SubmissionRecord,
    SubmissionStatus,
)


@dataclass(slots=True)
class SubmissionEntry:
    """A submission as a projection stores it: its time as epoch ms."""

    id: str
    form_id: str
    tenant_id: str | None
    status: str
    submitted_at: int
    data: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    execution_id: str | None = None
    duplicate_of: str | None = None
    retry_after_ms: int | None = None
    resumed: bool = False

    def to_record(self) -> SubmissionRecord:
        """The public record, the caller's own (values copied)."""
        return SubmissionRecord.model_construct(
            id=self.id, form_id=self.form_id, tenant_id=self.tenant_id,
            status=cast(SubmissionStatus, self.status), data=private_copy(self.data),
            errors=private_copy(self.errors), execution_id=self.execution_id,
            duplicate_of=self.duplicate_of, retry_after_ms=self.retry_after_ms,
            resumed=self.resumed, submitted_at=ms_to_datetime(self.submitted_at))


def form_id_of(event: Event) -> str | None:
    """The form a form entity's event is about; None for an execution's."""
    if not event.execution_id.startswith(ENTITY_PREFIX):
        return None
    return event.execution_id[len(ENTITY_PREFIX):]


def submission_of(event: Event) -> SubmissionEntry | None:
    """The submission a form's event records; None for other events."""
    if event.type not in (n.FORM_SUBMITTED, n.FORM_REJECTED):
        return None
    form_id = form_id_of(event)
    d = event.data
    if form_id is None or not isinstance(d.get("submission_id"), str):
        return None
    errors = d.get("errors")
    data = d.get("data")
    return SubmissionEntry(
        id=d["submission_id"], form_id=form_id, tenant_id=event.tenant_id,
        status="accepted" if event.type == n.FORM_SUBMITTED else str(d.get("reason")),
        submitted_at=event.timestamp_ms,
        data=private_copy(data) if isinstance(data, dict) else None,
        errors=private_copy(errors) if isinstance(errors, list) else None,
        execution_id=d.get("execution_id"), duplicate_of=d.get("first_submission_id"),
        retry_after_ms=d.get("retry_after_ms"), resumed=bool(d.get("resumed", False)))


def check_status(status: str | None) -> None:
    """Refuse a listing's unknown status (a typo would list nothing, silently)."""
    if status is not None and status not in SUBMISSION_STATUSES:
        raise ValueError(f"unknown submission status {status!r}; one of "
                         f"{', '.join(sorted(SUBMISSION_STATUSES))}")


def submission_matches(entry: SubmissionEntry, *, status: str | None,
                       tenant_id: str | None) -> bool:
    """Whether ``entry`` passes a listing's filters (None: any)."""
    return ((status is None or entry.status == status)
            and (tenant_id is None or entry.tenant_id == tenant_id))


__all__ = ["SubmissionEntry", "check_status", "form_id_of", "submission_matches", "submission_of"]
