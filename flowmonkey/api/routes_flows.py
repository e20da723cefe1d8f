"""``/v1/flows``: the flows the engine knows (definitions are shared by every tenant).

A flow has no tenant, so every key lists every flow; a tenant-bound key reads step
configs with their secrets redacted (:mod:`flowmonkey.api.redaction`), an admin key
reads them as registered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from flowmonkey.api.deps import Caller, EngineDep, Flows
from flowmonkey.api.errors import ApiError
from flowmonkey.api.redaction import redact_flow
from flowmonkey.api.schemas import FlowDefinitionOut, FlowList, FlowOut, FlowSummary, errors
from flowmonkey.model.flow import version_key

router = APIRouter(prefix="/v1/flows", tags=["flows"])


@router.get("", response_model=FlowList, responses=errors(401))
async def list_flows(engine: EngineDep, caller: Caller) -> FlowList:
    """Every registered flow version, by id, newest version first."""
    flows = sorted(engine.flows.all(), key=lambda f: version_key(f.version), reverse=True)
    flows.sort(key=lambda f: f.id)
    return FlowList(items=[FlowSummary.of(f) for f in flows])


@router.get("/{flow_id}", response_model=FlowOut, responses=errors(401, 404))
async def get_flow(
    flow_id: str, engine: EngineDep, caller: Caller, flows: Flows,
    version: Annotated[str | None, Query(description="default: the newest published "
                                                     "version, else the newest")] = None,
) -> FlowOut:
    """A flow's definition and the versions registered; for a tenant-bound key, secrets
    in step configs (header values, keys such as ``apiKey`` or ``password``) read
    ``[redacted]``."""
    flow = engine.flows.get(flow_id, version) or (
        engine.flows.get(flow_id, include_unpublished=True) if version is None else None)
    if flow is None and await flows.refresh():
        flow = engine.flows.get(flow_id, version, include_unpublished=True)
    if flow is None:
        what = f"flow {flow_id!r}" + (f" version {version!r}" if version else "")
        raise ApiError(404, "FLOW_NOT_FOUND", f"{what} is not registered")
    shown = flow if caller.admin else redact_flow(flow)
    return FlowOut(flow=FlowDefinitionOut.of(shown), versions=engine.flows.versions(flow_id))
