"""The ``HandlerParams`` a worker gives a job's handler: the job's input, its step
and config, and ``job`` (:class:`~flowmonkey.jobs.handle.JobHandle`).

A job carries its input, not its execution's context: ``context`` is empty, and
what the handler writes through ``helpers`` travels with ``job.complete`` (and is
checked against the execution's limits when it is decided)."""

from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import Any

from flowmonkey.events.envelope import ms_to_datetime
from flowmonkey.handlers.base import ContextHelpers, HandlerParams, VaultProvider
from flowmonkey.jobs.handle import JobHandle
from flowmonkey.kernel.copies import private_copy
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.flow import Step
from flowmonkey.model.limits import ContextLimits


def job_params(handle: JobHandle, step: Step, vault: VaultProvider | None) -> HandlerParams:
    view = handle.view
    created = ms_to_datetime(int(view.get("created_at") or 0))
    execution = Execution(
        id=str(view["execution_id"]), flow_id=str(view["flow_id"]),
        flow_version=str(view["flow_version"]), status=ExecutionStatus.WAITING,
        current_step_id=step.id, tenant_id=view.get("tenant_id"),
        created_at=created, updated_at=created)
    context: dict[str, Any] = {}
    return HandlerParams(
        input=view.get("input"), config=private_copy(step.config),
        context=MappingProxyType(context),
        helpers=ContextHelpers(context, ContextLimits(), private=True),
        execution=execution, step=step, attempt_id=str(view["attempt_id"]),
        attempt=int(view["attempt"]), abort=asyncio.Event(), vault=vault, job=handle)
