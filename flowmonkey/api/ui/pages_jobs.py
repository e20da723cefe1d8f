"""The jobs pages: the list (status, handler type, execution and worker filters, cursor
paging, its first page refreshed live) and one job, scoped to the session's tenant as
``/v1/jobs`` is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.ui.errors import not_found
from flowmonkey.api.ui.pages_support import PAGE_SIZE, choice_param, filters_of, link, text_param
from flowmonkey.api.ui.render import page, partial
from flowmonkey.api.ui.session import Session, UiSession
from flowmonkey.engine import Engine
from flowmonkey.model.job import JobStatus

router = APIRouter(include_in_schema=False)

STATUSES = tuple(s.value for s in JobStatus)
FILTERS = ("status", "type", "executionId", "workerId", "tenant")


#: how often the first page of the list polls its rows (htmx ``every``)
POLL = "2s"


async def _list_context(request: Request, engine: Engine,
                        session: UiSession) -> dict[str, Any]:
    principal = session.principal(request.query_params.get("tenant"))
    found = await engine.projection.list_jobs(
        tenant_id=principal.tenant_id, status=choice_param(request, "status", STATUSES),
        type=text_param(request, "type"), execution_id=text_param(request, "executionId"),
        worker_id=text_param(request, "workerId"), limit=PAGE_SIZE,
        cursor=text_param(request, "cursor", max_chars=2000))
    filters = filters_of(request, FILTERS)
    paged = "cursor" in request.query_params
    return {"items": found.items, "filters": filters, "statuses": STATUSES,
            "next_url": link("/ui/jobs", {**filters, "cursor": found.next_cursor})
            if found.next_cursor else None,
            "paged": paged, "poll": POLL,
            # later pages stay put: new jobs arrive on the first
            "rows_url": None if paged else link("/ui/jobs/rows", filters)}


@router.get("/ui/jobs")
async def jobs(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    return page(request, "jobs.html", session,
                **await _list_context(request, engine, session))


# before /ui/jobs/{job_id}, which would take "rows" for a job id
@router.get("/ui/jobs/rows")
async def job_rows(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    """The list's rows alone: what its first page polls."""
    return partial(request, "jobs_rows.html", session,
                   **await _list_context(request, engine, session))


@router.get("/ui/jobs/{job_id}")
async def job(job_id: str, request: Request, engine: EngineDep,
              session: Session) -> HTMLResponse:
    principal = session.principal(request.query_params.get("tenant"))
    record = await engine.projection.get_job(job_id, tenant_id=principal.tenant_id)
    if record is None:
        raise not_found("job")
    return page(request, "job.html", session, job=record)
