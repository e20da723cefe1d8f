"""The flows pages: every flow with its versions and their status (draft, published,
archived), and one flow version: its graph, its steps as a table, its pipes and the
other versions.

Flows have no tenant (every session sees every flow, as every key does in
``/v1/flows``); a tenant session reads step configs with their secrets redacted
(:mod:`flowmonkey.api.redaction`), as a tenant key does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowmonkey.api.deps import EngineDep, Flows
from flowmonkey.api.redaction import redact_flow
from flowmonkey.api.ui.errors import not_found
from flowmonkey.api.ui.graph import flow_svg
from flowmonkey.api.ui.pages_support import choice_param, int_param, link, text_param
from flowmonkey.api.ui.render import page
from flowmonkey.api.ui.session import Session
from flowmonkey.model.flow import Flow, Step, version_key

router = APIRouter(include_in_schema=False)

STATUSES = ("draft", "published", "archived")
#: flows (ids) per page of the list: the registry is in memory, the page is not
FLOWS_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class FlowEntry:
    """A flow id with its versions (newest first) as the list shows it."""

    id: str
    newest: Flow
    versions: list[Flow]


@dataclass(frozen=True, slots=True)
class StepRow:
    step: Step
    input: Any
    retry: Any
    initial: bool


def _entries(flows: list[Flow]) -> list[FlowEntry]:
    by_id: dict[str, list[Flow]] = {}
    for flow in flows:
        by_id.setdefault(flow.id, []).append(flow)
    entries = []
    for flow_id in sorted(by_id):
        versions = sorted(by_id[flow_id], key=lambda f: version_key(f.version), reverse=True)
        entries.append(FlowEntry(flow_id, versions[0], versions))
    return entries


@router.get("/ui/flows")
async def flows(request: Request, engine: EngineDep, session: Session) -> HTMLResponse:
    status = choice_param(request, "status", STATUSES)
    search = text_param(request, "q")
    entries = _entries([f for f in engine.flows.all()
                        if status is None or f.effective_status == status])
    if search is not None:
        entries = [e for e in entries if search.lower() in e.id.lower()]
    offset = int_param(request, "offset", 0, 0, max(len(entries), 0))
    later = offset + FLOWS_PER_PAGE
    params = {"status": status, "q": search}
    return page(request, "flows.html", session, items=entries[offset:later],
                count=len(entries), statuses=STATUSES,
                filters={"status": status or "", "q": search or ""},
                next_url=link("/ui/flows", {**params, "offset": later})
                if later < len(entries) else None,
                first_url=link("/ui/flows", params) if offset else None)


@router.get("/ui/flows/{flow_id}")
async def flow(flow_id: str, request: Request, engine: EngineDep, session: Session,
               refresher: Flows) -> HTMLResponse:
    version = text_param(request, "version")
    # as GET /v1/flows/{id}: the newest published version, else the newest
    found = engine.flows.get(flow_id, version) or (
        engine.flows.get(flow_id, include_unpublished=True) if version is None else None)
    if found is None and await refresher.refresh():
        found = engine.flows.get(flow_id, version, include_unpublished=True)
    if found is None:
        raise not_found("flow version" if version else "flow")
    shown = found if session.admin else redact_flow(found)
    versions = [engine.flows.get(flow_id, v) for v in engine.flows.versions(flow_id)]
    steps = [StepRow(s, s.input.model_dump(mode="json", by_alias=True),
                     s.retry.model_dump(mode="json", by_alias=True) if s.retry else None,
                     s.id == shown.initial_step_id) for s in shown.steps.values()]
    return page(request, "flow.html", session, flow=shown, steps=steps,
                versions=[v for v in versions if v is not None],
                # graph.py escapes every text it draws: the one markup a page trusts
                graph=flow_svg(shown),
                pipes=[p.model_dump(mode="json", by_alias=True) for p in shown.pipes])
