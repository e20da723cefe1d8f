"""Request and response bodies of the forms endpoints (the conventions of
:mod:`flowmonkey.api.schemas`: camelCase keys, the user's data as given, ISO-8601 UTC
points in time)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowmonkey.api.times import UtcDateTime
from flowmonkey.model.base import FlowMonkeyModel
from flowmonkey.model.form import Form
from flowmonkey.model.form_submission import SubmissionRecord, SubmissionStatus


class SubmissionAccepted(FlowMonkeyModel):
    submission_id: str = Field(description="this submission's id; for a duplicate, the "
                                           "first submission's")
    execution_id: str = Field(description="the execution the submission started (or "
                                          "resumed); for a duplicate, the first's")
    duplicate: bool = Field(default=False, description="the same content was submitted "
                                                       "within the form's duplicate window")


class SubmissionProblem(FlowMonkeyModel):
    pointer: str = Field(description="the field at fault, as a JSON pointer (RFC 6901); "
                                     "empty: the submission as a whole")
    message: str


class SubmissionInvalidError(FlowMonkeyModel):
    code: str = Field(description="SUBMISSION_INVALID")
    message: str
    details: list[SubmissionProblem]


class SubmissionInvalid(FlowMonkeyModel):
    """A 422: every problem, by JSON pointer (also in ``error.details``)."""

    error: SubmissionInvalidError
    errors: list[SubmissionProblem]


class FormOut(FlowMonkeyModel):
    """A form's definition as registered (camelCase, as written in files)."""

    form: dict[str, Any]

    @classmethod
    def of(cls, form: Form) -> FormOut:
        return cls(form=form.model_dump(mode="json", by_alias=True, exclude_none=True))


class FormSummary(FlowMonkeyModel):
    id: str
    tenant_id: str | None = None
    description: str | None = None
    flow_id: str | None = None
    enabled: bool

    @classmethod
    def of(cls, form: Form) -> FormSummary:
        return cls(id=form.id, tenant_id=form.tenant_id, description=form.description,
                   flow_id=form.flow_id, enabled=form.enabled)


class FormList(FlowMonkeyModel):
    items: list[FormSummary]


class SubmissionOut(FlowMonkeyModel):
    """A submission as its form's partition decided it. ``data``: the sanitised data
    (null for spam, a failed captcha, a duplicate); ``errors``: an invalid one's, by
    JSON pointer; ``executionId``: the execution it started or resumed (a duplicate's:
    the first's, named by ``duplicateOf``)."""

    id: str
    form_id: str
    tenant_id: str | None = None
    status: SubmissionStatus
    data: dict[str, Any] | None = None
    errors: list[SubmissionProblem] | None = None
    execution_id: str | None = None
    duplicate_of: str | None = None
    retry_after_ms: int | None = None
    resumed: bool = False
    submitted_at: UtcDateTime

    @classmethod
    def of(cls, record: SubmissionRecord) -> SubmissionOut:
        return cls.model_validate(record.model_dump())


class SubmissionPage(FlowMonkeyModel):
    items: list[SubmissionOut]
    next_cursor: str | None = None
