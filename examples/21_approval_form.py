"""An approval step waits for a form: the ``form-submit`` step's output carries the
submission URL (with its resume token) to send the approver; an invalid answer is
refused and the step keeps waiting, a valid one resumes it with the sanitised data,
and the flow goes on by what was decided.

The URL's token works once, for this form and this execution only; the step's
``timeoutMs`` bounds the wait. With ``FLOWMONKEY_PUBLIC_URL`` set, the URL is absolute.

Run: python examples/21_approval_form.py
"""

from __future__ import annotations

import asyncio
import sys

import httpx

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.api import create_app


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("pay-out")
async def pay_out(params: HandlerParams) -> StepResult:
    decision = params.context["decision"]
    return Result.success(f"paid {params.context['amount']} EUR "
                          f"(approved: {decision.get('comment') or 'no comment'})")


@handler("refuse")
async def refuse(params: HandlerParams) -> StepResult:
    return Result.success(f"refused: {params.context['decision'].get('comment', '')}")


flows = [{
    "id": "expense", "version": "1.0.0", "initialStepId": "approve",
    "steps": {
        "approve": {"id": "approve", "type": "form-submit", "outputKey": "decision",
                    "config": {"formId": "expense-approval", "timeoutMs": 86_400_000},
                    "transitions": {"onSuccess": "decide"}},
        "decide": {"id": "decide", "type": "conditional",
                   "config": {"conditions": [{"path": "decision.approved", "op": "eq",
                                              "value": True, "target": "pay"}],
                              "default": "refuse"},
                   "transitions": {"onSuccess": None}},
        "refuse": {"id": "refuse", "type": "refuse", "outputKey": "result",
                   "transitions": {"onSuccess": None}},
        "pay": {"id": "pay", "type": "pay-out", "outputKey": "result",
                "transitions": {"onSuccess": None}},
    },
}]
forms = [{
    "id": "expense-approval",
    "schema": {"type": "object", "required": ["approved"],
               "properties": {"approved": {"type": "boolean"},
                              "comment": {"type": "string", "maxLength": 200}},
               "additionalProperties": False},
}]


async def main() -> None:
    async with Engine(flows=flows, handlers=[pay_out, refuse], forms=forms) as engine:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine, None)),
                                   base_url="http://api")
        async with client:
            created = await engine.create("expense", {"amount": 120})
            waiting = await engine.wait(created.execution.id)
            url = waiting.context["decision"]["submissionUrl"]
            print(f"{waiting.status.value}; send the approver to {url[:60]}...")
            check(waiting.status.value == "waiting", "the step waits for the form")

            wrong = await client.post(url, json={"approved": "sure"})
            print(f"an invalid answer -> {wrong.status_code} {wrong.json()['errors']}")
            still = await engine.get(created.execution.id)
            check(wrong.status_code == 422 and still is not None and
                  still.status.value == "waiting", "an invalid answer leaves it waiting")

            # what an HTML form posts: the checkbox as "on", the comment trimmed
            answer = await client.post(url, data={"approved": "on", "comment": "  ok  "})
            print(f"the approval -> {answer.status_code} {answer.json()}")
            check(answer.status_code == 201, "the approval is taken")
            done = await engine.wait(created.execution.id)
            print(f"  {done.status.value}: {done.context['result']}")
            check(done.context["result"] == "paid 120 EUR (approved: ok)", "the flow went on")

            reused = await client.post(url, json={"approved": False})
            print(f"the URL again -> {reused.status_code} {reused.json()['error']['code']}")
            check(reused.status_code == 410, "a token works once")
    print("approval form OK")


if __name__ == "__main__":
    asyncio.run(main())
