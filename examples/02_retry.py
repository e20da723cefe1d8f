"""Step retry with exponential backoff.

``retry.maxAttempts`` counts retries after the first try (as in the original), and
the delay before retry *n* is ``min(backoffMs * backoffMultiplier**(n-1), maxBackoffMs)``.
``retryOn`` limits retries to some error codes; other failures follow ``onFailure``
(or fail the execution when there is none). Each retry emits ``step.retry``; a
backoff above zero parks the execution as ``waiting`` on a durable timer.

With the TestHarness's simulated clock the backoff takes no wall-clock time, but the
execution's events show time moving by exactly the backoff.

Run: python examples/02_retry.py
"""

from __future__ import annotations

import asyncio
import sys

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("flaky-api", description="Fails with TRANSIENT until its third attempt.")
async def flaky_api(params: HandlerParams) -> StepResult:
    if params.attempt < 3:
        return Result.failure("TRANSIENT", f"service unavailable (attempt {params.attempt})")
    return Result.success({"answer": 42, "attempt": params.attempt})


@handler("strict-api", description="Always fails with a non-retryable code.")
async def strict_api(params: HandlerParams) -> StepResult:
    return Result.failure("BAD_REQUEST", "the request is invalid")


def flow(flow_id: str, handler_type: str) -> dict[str, object]:
    return {
        "id": flow_id, "version": "1.0.0", "initialStepId": "call",
        "steps": {
            "call": {
                "id": "call", "type": handler_type, "outputKey": "response",
                "retry": {"maxAttempts": 3, "backoffMs": 1000, "backoffMultiplier": 2,
                          "maxBackoffMs": 60000, "retryOn": ["TRANSIENT"]},
                "transitions": {"onSuccess": None},
            },
        },
    }


async def main() -> None:
    flows = [flow("flaky", "flaky-api"), flow("strict", "strict-api")]
    async with TestHarness(handlers=[flaky_api, strict_api], flows=flows) as t:
        r = await t.run("flaky", {})
        t.assert_completed(r.execution)
        retries = [e for e in r.events if e.type == "step.retry"]
        for e in retries:
            print(f"step.retry attempt {e['attempt']}/{e['max_attempts']} "
                  f"backoff {e['backoff_ms']} ms after {e['error']['code']}")
        took = r.events[-1].timestamp_ms - r.events[0].timestamp_ms
        print(f"flaky: {r.execution.status.value} with {r.execution.context['response']} "
              f"after {took} ms of simulated time")
        check([e["backoff_ms"] for e in retries] == [1000, 2000], "backoffs 1000, 2000")
        check(took == 3000, "3 s of simulated backoff")

        r = await t.run("strict", {})
        t.assert_failed(r.execution, "BAD_REQUEST")
        error = r.execution.error
        assert error is not None
        print(f"strict: {r.execution.status.value} with {error.code}: {error.message}")
        check(not any(e.type == "step.retry" for e in r.events), "no retry for BAD_REQUEST")
    print("retry OK")


if __name__ == "__main__":
    asyncio.run(main())
