"""A public form starts a flow: each valid submission starts an onboarding execution
with the sanitised data; an invalid one is answered 422 with every problem by JSON
pointer, a bot filling the honeypot gets a 201 and starts nothing, and the same
content sent twice answers with the first submission.

The form is a definition, like a flow: a JSON Schema, how fields are sanitised, a
honeypot field, rate limits and a duplicate window. The API app runs in this process
(``httpx``'s ASGI transport): no server, no keys. With ``flowmonkey api`` the same POSTs
go to ``/v1/forms/signup/submissions`` over HTTP, with no API key.

Run: python examples/20_public_form.py
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


@handler("welcome")
async def welcome(params: HandlerParams) -> StepResult:
    return Result.success(f"Welcome, {params.context['name']}!")


flows = [{
    "id": "onboarding", "version": "1.0.0", "initialStepId": "welcome",
    "steps": {"welcome": {"id": "welcome", "type": "welcome", "outputKey": "message",
                          "transitions": {"onSuccess": None}}},
}]
forms = [{
    "id": "signup", "flowId": "onboarding",
    "schema": {
        "type": "object", "required": ["name", "email"],
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                       "email": {"type": "string", "format": "email"},
                       "plan": {"enum": ["free", "pro"]},
                       "about": {"type": "string"}},
        "additionalProperties": False},
    "fields": {"about": {"stripHtml": True, "maxChars": 500}},
    "honeypot": "website",
    "rateLimit": {"perAddress": {"count": 5, "windowS": 60}},
    "duplicateWindowS": 3600,
}]


async def main() -> None:
    async with Engine(flows=flows, handlers=[welcome], forms=forms) as engine:
        app = create_app(engine, auth=None)  # submissions need no key anyway
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            url = "/v1/forms/signup/submissions"
            sent = {"name": "  Ada ", "email": "ada@example.com", "plan": "pro",
                    "about": "I <b>love</b> engines"}
            taken = await client.post(url, json=sent)
            print(f"POST {url} -> {taken.status_code} {taken.json()}")
            check(taken.status_code == 201, "a valid submission is taken")
            execution = await engine.wait(taken.json()["executionId"])
            print(f"  {execution.status.value}: {execution.context['message']} "
                  f"(about: {execution.context['about']!r})")
            check(execution.context["about"] == "I love engines", "HTML is stripped")

            # an HTML form's post works the same (urlencoded or multipart)
            browser = await client.post(url, data={"name": "Lin", "email": "lin@example.com"})
            print(f"urlencoded -> {browser.status_code}")
            check(browser.status_code == 201, "a form post is taken")

            invalid = await client.post(url, json={"name": "", "email": "nope", "x": 1})
            print(f"invalid -> {invalid.status_code}")
            for problem in invalid.json()["errors"]:
                print(f"  {problem['pointer'] or '(submission)'}: {problem['message']}")
            check(invalid.status_code == 422 and len(invalid.json()["errors"]) == 3,
                  "every problem is named")

            bot = await client.post(url, json={**sent, "website": "http://spam.example"})
            print(f"honeypot filled -> {bot.status_code} (nothing started: "
                  f"{await engine.get(bot.json()['executionId']) is None})")
            check(await engine.get(bot.json()["executionId"]) is None, "spam starts nothing")

            again = await client.post(url, json=sent)
            print(f"the same again -> {again.status_code} {again.json()}")
            check(again.status_code == 200 and again.json()["duplicate"] and
                  again.json()["submissionId"] == taken.json()["submissionId"],
                  "a duplicate answers with the first submission")

            page = await client.get("/v1/forms/signup/submissions")
            print("submissions:", [s["status"] for s in page.json()["items"]])
    print("public form OK")


if __name__ == "__main__":
    asyncio.run(main())
