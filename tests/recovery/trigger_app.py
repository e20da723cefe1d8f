"""Flows and triggers of the trigger crash tests, loaded by `flowmonkey processor --app`
and `flowmonkey trigger-consumer --app`.

* ``every-second`` (when ``TRIGGER_CRASH_SCHEDULE`` is set): a schedule firing each
  second (cron with seconds), catching up every missed tick (``catchUp: all``),
  starting ``tick``;
* ``records-in``: a topic trigger on the topic named by ``TRIGGER_CRASH_TOPIC``,
  starting ``record`` with the record's value as its context.
"""

from __future__ import annotations

import os

from flowmonkey import Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.model.result import StepResult


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


def _one_step(flow_id: str) -> dict[str, object]:
    return {"id": flow_id, "version": "1", "initialStepId": "a",
            "steps": {"a": {"type": "noop", "outputKey": "a",
                            "transitions": {"onSuccess": None}}}}


flows = [_one_step("tick"), _one_step("record")]
handlers = [noop]
triggers: list[dict[str, object]] = []
if os.environ.get("TRIGGER_CRASH_SCHEDULE"):
    triggers.append({"id": "every-second", "kind": "schedule", "flowId": "tick",
                     "schedule": {"cron": "*/1 * * * * *", "timezone": "UTC",
                                  "catchUp": "all", "catchUpLimit": 1000}})
if os.environ.get("TRIGGER_CRASH_TOPIC"):
    triggers.append({"id": "records-in", "kind": "topic", "flowId": "record",
                     "topic": {"topic": os.environ["TRIGGER_CRASH_TOPIC"]}})
