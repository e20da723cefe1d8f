"""Shared helpers: ``make_params`` builds the HandlerParams a handler receives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from flowmonkey.handlers.base import ContextHelpers, HandlerParams
from flowmonkey.model import ContextLimits, Execution, ExecutionStatus, Step

MakeParams = Callable[..., HandlerParams]


def build_params(
    input: Any = None,
    config: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    abort: asyncio.Event | None = None,
) -> HandlerParams:
    ctx = dict(context or {})
    now = datetime.now(UTC)
    execution = Execution.model_construct(
        id="exec-1", flow_id="flow", flow_version="1", status=ExecutionStatus.RUNNING,
        context=ctx, created_at=now, updated_at=now)
    return HandlerParams(
        input=input,
        config=dict(config or {}),
        context=ctx,
        helpers=ContextHelpers(ctx, ContextLimits()),
        execution=execution,
        step=Step(id="s", type="x"),
        attempt_id="attempt-1",
        abort=abort or asyncio.Event(),
    )


@pytest.fixture
def make_params() -> MakeParams:
    return build_params
