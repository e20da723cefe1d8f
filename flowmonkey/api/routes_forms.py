"""``/v1/forms``: the public submission endpoint, and the forms and their submissions
for API keys.

``POST /v1/forms/{form_id}/submissions`` needs no API key: anyone may submit a public
form. What happens, in order (:mod:`flowmonkey.api.form_submissions`):

1. an unknown form: 404; a disabled one: 409 ``FORM_DISABLED``;
2. the body, counted while it streams: 413 past the form's ``maxBodyBytes``;
3. the body parsed: JSON, ``application/x-www-form-urlencoded`` or
   ``multipart/form-data``; any other type, a file, a charset but UTF-8: 415; not
   valid in its format, not UTF-8, nesting deeper than 8, over 200 fields or 2,000
   values, a key over 200 characters, a NUL: 400 ``INVALID_BODY``;
4. a resume token (``?token=`` or a ``token`` field) that names no waiting step of
   this form: 404 ``TOKEN_NOT_FOUND``;
5. the captcha, when the form has one: not solved, 400 ``CAPTCHA_FAILED``; the
   provider unreachable, 503 ``CAPTCHA_UNAVAILABLE`` (``onUnreachable: closed``) or
   let through (``open``);
6. the honeypot filled: 201 as if taken, with an execution id like a real one's;
   nothing starts (recorded as spam);
7. sanitised (the form's field rules), then checked against its JSON Schema: 422
   ``SUBMISSION_INVALID`` listing every problem by JSON pointer (recorded as invalid);
8. decided on the form's partition: 429 ``RATE_LIMITED`` with ``Retry-After`` past a
   rate limit; 200 with ``duplicate: true`` and the first submission's ids for the
   same content within the duplicate window; else 201 ``{submissionId,
   executionId}``, the execution started (or, with a token, resumed: a token that is
   not good any more answers 404 or 410, the submission stays recorded).

Steps 5 to 7 record their verdict on the form's partition, where it counts against
the rate limits. Nothing is started by any refused submission.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from flowmonkey.api.deps import Caller, EngineDep
from flowmonkey.api.errors import error_body, not_found
from flowmonkey.api.form_schemas import (
    FormList,
    FormOut,
    FormSummary,
    SubmissionAccepted,
    SubmissionInvalid,
    SubmissionOut,
    SubmissionPage,
)
from flowmonkey.api.form_submissions import FormSubmissions, Refused
from flowmonkey.api.routes_executions import MAX_PAGE
from flowmonkey.api.schemas import errors
from flowmonkey.engine import Engine
from flowmonkey.model.form import Form
from flowmonkey.model.form_submission import SubmissionStatus

router = APIRouter(prefix="/v1/forms", tags=["forms"])

_BODY = {"schema": {"type": "object", "additionalProperties": True}}


def submissions_of(request: Request) -> FormSubmissions:
    found: FormSubmissions = request.app.state.form_submissions
    return found


@router.post(
    "/{form_id}/submissions", status_code=201, response_model=SubmissionAccepted,
    responses={**errors(400, 404, 409, 410, 413, 415, 429, 503),
               200: {"model": SubmissionAccepted,
                     "description": "a duplicate: the first submission's ids"},
               201: {"description": "taken: the execution started (or resumed)"},
               422: {"model": SubmissionInvalid,
                     "description": "every problem of the submission, by JSON pointer"}},
    openapi_extra={"requestBody": {
        "description": "the form's fields: JSON, urlencoded or multipart without files; "
                       "a form-submit step's token as ?token= or a token field",
        "content": {"application/json": _BODY,
                    "application/x-www-form-urlencoded": _BODY,
                    "multipart/form-data": _BODY}}})
async def submit(form_id: str, request: Request, response: Response) -> Response:
    """Submit a public form (no API key)."""
    try:
        submitted = await submissions_of(request).submit(form_id, request)
    except Refused as exc:
        if not exc.problems:
            raise
        problems = [p.to_dict() for p in exc.problems]
        body = error_body(exc.code, exc.message, problems)
        body["errors"] = problems
        return JSONResponse(body, status_code=exc.status)
    out = SubmissionAccepted(submission_id=submitted.submission_id,
                             execution_id=submitted.execution_id,
                             duplicate=submitted.duplicate)
    return JSONResponse(out.model_dump(mode="json", by_alias=True),
                        status_code=200 if submitted.duplicate else 201)


def _visible(form: Form | None, tenant_id: str | None) -> bool:
    return form is not None and (tenant_id is None or form.tenant_id == tenant_id)


@router.get("", response_model=FormList, responses=errors(401))
async def list_forms(engine: EngineDep, caller: Caller) -> FormList:
    """The forms this API knows, by id: a tenant's key sees its tenant's."""
    forms = sorted((f for f in engine.forms.all() if _visible(f, caller.tenant_id)),
                   key=lambda f: f.id)
    return FormList(items=[FormSummary.of(f) for f in forms])


@router.get("/{form_id}", response_model=FormOut, responses=errors(401, 404))
async def get_form(form_id: str, engine: EngineDep, caller: Caller) -> FormOut:
    """A form's definition (another tenant's answers 404, as an unknown one)."""
    return FormOut.of(_form(engine, form_id, caller.tenant_id))


def _form(engine: Engine, form_id: str, tenant_id: str | None) -> Form:
    form = engine.forms.get(form_id)
    if form is None or not _visible(form, tenant_id):
        raise not_found("form", form_id)
    return form


@router.get("/{form_id}/submissions", response_model=SubmissionPage,
            responses=errors(400, 401, 404, 422))
async def list_submissions(
    form_id: str, engine: EngineDep, caller: Caller,
    status: SubmissionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
) -> SubmissionPage:
    """A form's submissions, newest first, whatever became of them; pass
    ``nextCursor`` back as ``cursor`` for the next page."""
    _form(engine, form_id, caller.tenant_id)
    page = await engine.projection.list_submissions(
        form_id, status=status, tenant_id=caller.tenant_id, limit=limit, cursor=cursor)
    return SubmissionPage(items=[SubmissionOut.of(r) for r in page.items],
                          next_cursor=page.next_cursor)


@router.get("/{form_id}/submissions/{submission_id}", response_model=SubmissionOut,
            responses=errors(401, 404))
async def get_submission(form_id: str, submission_id: str, engine: EngineDep,
                         caller: Caller) -> SubmissionOut:
    _form(engine, form_id, caller.tenant_id)
    record = await engine.projection.get_submission(form_id, submission_id,
                                                    tenant_id=caller.tenant_id)
    if record is None:
        raise not_found("submission", submission_id)
    return SubmissionOut.of(record)
