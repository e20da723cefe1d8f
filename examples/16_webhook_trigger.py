"""A webhook trigger: a signed POST starts a flow, and a retried delivery does not
start it twice.

The trigger names its flow, how the context is built from what arrived (here a
template over the body) and the vault secret its signature is checked with (GitHub's
``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body). The API app runs
in this process (``httpx``'s ASGI transport): no server, no keys to set up. With
``flowmonkey api`` the same POST goes to ``/v1/hooks/{trigger_id}`` over HTTP, and the
secret comes from ``FLOWMONKEY_SECRET_<NAME>``.

Run: python examples/16_webhook_trigger.py
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.api import create_app
from flowmonkey.api.signatures import github_signature


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("build")
async def build(params: HandlerParams) -> StepResult:
    return Result.success(f"built {params.context['repo']} at {params.context['commit']}")


flows = [{
    "id": "build", "version": "1.0.0", "initialStepId": "build",
    "steps": {"build": {"id": "build", "type": "build", "outputKey": "result",
                        "transitions": {"onSuccess": None}}},
}]
handlers = [build]
triggers = [{
    "id": "github-push", "kind": "webhook", "flowId": "build",
    "context": {"type": "template",
                "template": {"repo": "${body.repository.full_name}", "commit": "${body.after}"}},
    "webhook": {"secret": "github-hook", "deliveryHeader": "X-GitHub-Delivery"},
}]
SECRET = "a-shared-secret-with-github"


class Vault:
    """Where the API reads the webhook's secret (by its name) from."""

    async def get_secret(self, name: str) -> str | None:
        return SECRET if name == "github-hook" else None


async def main() -> None:
    async with Engine(flows=flows, handlers=handlers, triggers=triggers,
                      vault=Vault()) as engine:
        app = create_app(engine, auth=None)  # webhooks need no API key anyway
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            for _ in range(500):  # registered by the engine's start, within moments
                if await engine.projection.get_trigger("github-push") is not None:
                    break
                await asyncio.sleep(0.01)
            body = json.dumps({"repository": {"full_name": "acme/app"},
                               "after": "9f2c1e"}).encode()
            headers = {"X-Hub-Signature-256": github_signature(SECRET, body),
                       "X-GitHub-Delivery": "72d3162e-cc78", "content-type":
                       "application/json"}
            first = await client.post("/v1/hooks/github-push", content=body, headers=headers)
            print(f"POST /v1/hooks/github-push -> {first.status_code} {first.json()}")
            check(first.status_code == 202, "a signed delivery is accepted")
            execution = await engine.wait(first.json()["executionId"])
            print(f"  {execution.status.value}: {execution.context['result']}")
            check(execution.context["result"] == "built acme/app at 9f2c1e", "the flow ran")

            again = await client.post("/v1/hooks/github-push", content=body, headers=headers)
            print(f"retried delivery -> {again.status_code} {again.json()}")
            check(again.json()["executionId"] == first.json()["executionId"],
                  "a retried delivery answers with the first execution")
            check(again.json()["duplicate"] is True, "and says it is a duplicate")

            forged = await client.post("/v1/hooks/github-push", content=body + b" ",
                                       headers=headers)
            print(f"body altered by one byte -> {forged.status_code} {forged.json()}")
            check(forged.status_code == 401, "an altered body is refused")
            executions = await engine.list(flow_id="build")
            check(len(executions.items) == 1, "one execution in all")
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
