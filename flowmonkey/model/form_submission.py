"""A form submission as the projection keeps it: what its form's partition decided
(``status``), the sanitised data, the schema errors of an invalid one, and the
execution it started or resumed (for a duplicate: the first submission's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from flowmonkey.model.base import FrozenModel

SubmissionStatus = Literal["accepted", "invalid", "spam", "duplicate", "rate_limited",
                           "captcha_failed", "disabled"]
SUBMISSION_STATUSES: frozenset[str] = frozenset(get_args(SubmissionStatus))


class SubmissionRecord(FrozenModel):
    """``data``: the sanitised data (None for spam, a failed captcha, a duplicate and a
    refusal before validation). ``duplicate_of``: a duplicate's first submission.
    ``retry_after_ms``: a rate-limited one's wait. ``resumed``: it resumed a waiting
    step (``execution_id``) instead of starting an execution."""

    id: str
    form_id: str
    tenant_id: str | None = None
    status: SubmissionStatus
    data: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    execution_id: str | None = None
    duplicate_of: str | None = None
    retry_after_ms: int | None = None
    resumed: bool = False
    submitted_at: datetime
