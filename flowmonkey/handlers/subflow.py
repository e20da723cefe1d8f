"""The ``sub-flow`` handler: start a child execution of another flow.

The handler only asks the kernel to start the child (``Result.start_child``), never
runs it itself: a child's waits must not sleep in the parent, and a crash must not
lose both (docs/compatibility.md). The child runs as an execution
of its own, and in waiting mode the parent step resumes when it ends, with output
``{childExecutionId, flowId, status, context}``. Fire-and-forget outputs
``{childExecutionId, flowId, mode: "fire-and-forget"}``.

The engine registers this handler itself, passing a lookup so that an unknown flow
fails at once with ``SUB_FLOW_ERROR`` instead of later in the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowmonkey.handlers.base import HandlerMetadata, HandlerParams
from flowmonkey.model.result import Result, StepResult

FlowExists = Callable[[str, str | None], bool]
"""``(flow_id, flow_version or None for the latest) -> registered?``"""

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["flowId"],
    "properties": {
        "flowId": {"type": "string", "minLength": 1, "description": "the child flow"},
        "flowVersion": {"type": "string", "description": "a version; latest when absent"},
        "waitForCompletion": {
            "type": "boolean", "default": True,
            "description": "wait for the child to end (its final context becomes the "
                           "output), or start it and continue at once",
        },
    },
}


class SubFlowHandler:
    """Start a child execution (type ``sub-flow``); its context is the step input."""

    metadata = HandlerMetadata(
        type="sub-flow",
        name="Sub-flow",
        description="Run another flow as a child execution, waiting for it or not.",
        category="control",
        config_schema=CONFIG_SCHEMA,
    )

    def __init__(self, flow_exists: FlowExists) -> None:
        self._flow_exists = flow_exists

    async def execute(self, params: HandlerParams) -> StepResult:
        config = params.config
        flow_id = config.get("flowId")
        if not flow_id:
            return Result.failure("MISSING_FLOW_ID", "Sub-flow config must include flowId")
        if not isinstance(flow_id, str):
            return Result.failure("INPUT_ERROR", "sub-flow: config.flowId must be a string")
        version = config.get("flowVersion")
        if version is not None and not isinstance(version, str):
            return Result.failure("INPUT_ERROR", "sub-flow: config.flowVersion must be a string")
        wait = config.get("waitForCompletion", True)
        if wait is None:
            wait = True
        if not isinstance(wait, bool):
            return Result.failure(
                "INPUT_ERROR", "sub-flow: config.waitForCompletion must be true or false")
        try:
            exists = self._flow_exists(flow_id, version)
        except Exception as exc:
            return Result.failure("SUB_FLOW_ERROR",
                                  f"sub-flow: could not look up flow {flow_id!r}: {exc}")
        if not exists:
            which = f"flow {flow_id!r}" + (f" version {version!r}" if version else "")
            return Result.failure(
                "SUB_FLOW_ERROR", f"sub-flow: {which} is not registered",
                details={"flowId": flow_id, "flowVersion": version})
        child_input = params.input if params.input is not None else {}
        return Result.start_child(flow_id, child_input, wait=wait, flow_version=version)
