"""``/health``: is this process able to serve (no key needed, nothing revealed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from flowmonkey.api.deps import EngineDep
from flowmonkey.api.schemas import HealthOut
from flowmonkey.engine import Engine

router = APIRouter(tags=["health"])


def unhealthy_reason(engine: Engine) -> str | None:
    """Why the engine cannot serve, or None. Reasons name the part that failed and
    the error's type, not its message (which may quote hosts or data)."""
    if not engine.started:
        return "the engine is not started"
    failure = engine.processor_failure()
    if failure is not None:
        return f"a processor stopped: {type(failure).__name__}"
    projector = engine.projector
    if projector is not None and (failed := projector.failure()) is not None:
        return f"the projector stopped: {type(failed).__name__}"
    return None


@router.get("/health", response_model=HealthOut, response_model_exclude_none=True,
            responses={503: {"model": HealthOut, "description": "cannot serve; see reason"}})
async def health(engine: EngineDep) -> HealthOut | JSONResponse:
    reason = unhealthy_reason(engine)
    if reason is not None:
        body = HealthOut(status="unavailable", reason=reason)
        return JSONResponse(body.model_dump(by_alias=True), status_code=503)
    return HealthOut(status="ok")
