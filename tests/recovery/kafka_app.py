"""Flows and handlers for the Kafka crash test, loaded by `flowmonkey processor --app`.

* ``crashy``: a step, a timed wait, a step that fails its first attempt and is retried
  after a backoff, a last step;
* ``parent``: starts a ``child`` sub-flow (which waits too) and waits for it.
"""

from __future__ import annotations

from flowmonkey import Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.model.result import StepResult


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


@handler("nap")
async def nap(params: HandlerParams) -> StepResult:
    return Result.wait(100, "nap")


@handler("flaky")
async def flaky(params: HandlerParams) -> StepResult:
    if params.attempt == 1:
        return Result.failure("TRANSIENT", "the first attempt always fails")
    return Result.success({"attempt": params.attempt})


CRASHY = {
    "id": "crashy", "version": "1", "initialStepId": "a",
    "steps": {
        "a": {"type": "noop", "outputKey": "a", "transitions": {"onSuccess": "b"}},
        "b": {"type": "nap", "transitions": {"onSuccess": "c"}},
        "c": {"type": "flaky", "outputKey": "c", "transitions": {"onSuccess": "d"},
              "retry": {"maxAttempts": 2, "backoffMs": 100}},
        "d": {"type": "noop", "outputKey": "d", "transitions": {"onSuccess": None}},
    },
}
CHILD = {
    "id": "child", "version": "1", "initialStepId": "x",
    "steps": {
        "x": {"type": "nap", "transitions": {"onSuccess": "y"}},
        "y": {"type": "noop", "outputKey": "y", "transitions": {"onSuccess": None}},
    },
}
PARENT = {
    "id": "parent", "version": "1", "initialStepId": "spawn",
    "steps": {
        "spawn": {"type": "sub-flow", "config": {"flowId": "child", "waitForCompletion": True},
                  "outputKey": "child", "transitions": {"onSuccess": "end"}},
        "end": {"type": "noop", "outputKey": "end", "transitions": {"onSuccess": None}},
    },
}

flows = [CRASHY, CHILD, PARENT]
handlers = [noop, nap, flaky]
