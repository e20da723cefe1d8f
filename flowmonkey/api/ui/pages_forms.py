"""The forms pages: the forms a session may see, one form with its submissions (status
filter, cursor paging), and one submission, scoped to the session's tenant as
``/v1/forms`` is (another tenant's form or submission is the same 404 as a missing
one)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.ui.errors import not_found
from flowmonkey.api.ui.pages_support import (
    PAGE_SIZE,
    choice_param,
    filters_of,
    int_param,
    link,
    segment,
    text_param,
)
from flowmonkey.api.ui.render import page
from flowmonkey.api.ui.session import Session
from flowmonkey.engine import Engine
from flowmonkey.model.form import Form
from flowmonkey.model.form_submission import SUBMISSION_STATUSES

router = APIRouter(include_in_schema=False)

STATUSES = tuple(sorted(SUBMISSION_STATUSES))
#: forms per page of the list (a deployment's fixed set, held in memory)
FORMS_PER_PAGE = 100


def _visible(form: Form, tenant_id: str | None) -> bool:
    return tenant_id is None or form.tenant_id == tenant_id


def _form(engine: Engine, form_id: str, tenant_id: str | None) -> Form:
    form = engine.forms.get(form_id)
    if form is None or not _visible(form, tenant_id):
        raise not_found("form")
    return form


@router.get("/ui/forms")
async def forms(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    shown = sorted((f for f in engine.forms.all() if _visible(f, principal.tenant_id)),
                   key=lambda f: f.id)
    offset = int_param(request, "offset", 0, 0, max(len(shown), 0))
    tenant = request.query_params.get("tenant", "")
    later = offset + FORMS_PER_PAGE
    return page(request, "forms.html", session, items=shown[offset:later],
                filters=filters_of(request, ("tenant",)),
                next_url=link("/ui/forms", {"tenant": tenant, "offset": later})
                if later < len(shown) else None,
                first_url=link("/ui/forms", {"tenant": tenant}) if offset else None)


@router.get("/ui/forms/{form_id}")
async def form(form_id: str, request: Request, engine: EngineDep,
               session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    found = _form(engine, form_id, principal.tenant_id)
    page_ = await engine.projection.list_submissions(
        form_id, status=choice_param(request, "status", STATUSES),
        tenant_id=principal.tenant_id, limit=PAGE_SIZE,
        cursor=text_param(request, "cursor", max_chars=2000))
    filters = filters_of(request, ("status", "tenant"))
    here = f"/ui/forms/{segment(form_id)}"
    return page(request, "form.html", session, form=found, items=page_.items,
                filters=filters, statuses=STATUSES,
                next_url=link(here, {**filters, "cursor": page_.next_cursor})
                if page_.next_cursor else None,
                first_url=link(here, filters) if "cursor" in request.query_params else None)


@router.get("/ui/forms/{form_id}/submissions/{submission_id}")
async def submission(form_id: str, submission_id: str, request: Request,
                     engine: EngineDep, session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    found = _form(engine, form_id, principal.tenant_id)
    record = await engine.projection.get_submission(form_id, submission_id,
                                                    tenant_id=principal.tenant_id)
    if record is None:
        raise not_found("submission")
    return page(request, "submission.html", session, form=found, submission=record)
