"""``/v1/jobs``: list and read jobs (stateful handlers' step attempts, run by workers).

Read-only: workers drive jobs through the log, not through the API. Every query is
scoped to the caller's tenant exactly like executions: another tenant's job answers
404, as one that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from flowmonkey.api.deps import Caller, EngineDep
from flowmonkey.api.errors import not_found
from flowmonkey.api.routes_executions import MAX_PAGE
from flowmonkey.api.schemas import JobOut, JobPage, errors
from flowmonkey.model.job import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("", response_model=JobPage, responses=errors(400, 401, 422))
async def list_jobs(
    engine: EngineDep, caller: Caller,
    status: JobStatus | None = None,
    type: Annotated[str | None, Query(min_length=1, description="the handler type")] = None,
    execution_id: Annotated[str | None, Query(alias="executionId", min_length=1)] = None,
    worker_id: Annotated[str | None, Query(alias="workerId", min_length=1,
                                           description="the worker holding (or that "
                                                       "last held) the job")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
) -> JobPage:
    """Jobs, newest first; pass ``nextCursor`` back as ``cursor`` for the next page
    (``null`` on the last one)."""
    page = await engine.projection.list_jobs(
        tenant_id=caller.tenant_id, status=status, type=type, execution_id=execution_id,
        worker_id=worker_id, limit=limit, cursor=cursor)
    return JobPage(items=[JobOut.of(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=errors(401, 404))
async def get_job(job_id: str, engine: EngineDep, caller: Caller) -> JobOut:
    job = await engine.projection.get_job(job_id, tenant_id=caller.tenant_id)
    if job is None:
        raise not_found("job", job_id)
    return JobOut.of(job)
