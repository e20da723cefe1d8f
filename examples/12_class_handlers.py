"""Class handlers: validated pydantic input and secrets from a vault.

Subclass ``flowmonkey.Handler``, declare ``Input`` (a pydantic model) and write
``run(data, params)``. The input model is built from the step's config overlaid with
its resolved input, so a flow can set defaults in config and pass data through the
context. Fields listed in ``vault_fields`` are fetched from the engine's vault
provider (``Engine(vault=...)``; ``EnvVaultProvider`` reads environment variables)
and are never written to the log. Invalid input fails the step with ``INPUT_ERROR``
naming each field.

This example uses an ``Engine`` directly (real time, in-memory embedded log).

Run: python examples/12_class_handlers.py
"""

from __future__ import annotations

import asyncio
import sys
from typing import ClassVar

from pydantic import BaseModel, Field, HttpUrl

from flowmonkey import Engine, EngineOptions, Handler, HandlerParams, Result, StepResult


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


SECRET = "sk-live-0123456789"


class DictVault:
    """A vault provider backed by a dict (use EnvVaultProvider or your own in production)."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._secrets = secrets

    async def get_secret(self, name: str) -> str | None:
        return self._secrets.get(name)


class WebhookInput(BaseModel):
    url: HttpUrl
    event: str = Field(min_length=1)
    retries: int = Field(default=3, ge=0, le=10)
    api_key: str


class SendWebhook(Handler[WebhookInput]):
    """Pretend to POST an event to a webhook (no network: this is an example)."""

    type = "send-webhook"
    name = "Send webhook"
    category = "external"
    Input = WebhookInput
    vault_fields: ClassVar[dict[str, str]] = {"api_key": "webhook-api-key"}

    async def run(self, data: WebhookInput, params: HandlerParams) -> StepResult:
        signed = data.api_key.startswith("sk-")
        return Result.success({"sent_to": str(data.url), "event": data.event,
                               "retries": data.retries, "signed": signed})


FLOW = {
    "id": "notify", "version": "1.0.0", "initialStepId": "send",
    "steps": {"send": {"id": "send", "type": "send-webhook",
                       "config": {"url": "https://hooks.example.com/orders"},
                       "input": {"type": "key", "key": "payload"},
                       "outputKey": "delivery", "transitions": {"onSuccess": None}}},
}


async def main() -> None:
    engine = Engine(flows=[FLOW], handlers=[SendWebhook()],
                    options=EngineOptions(record_history=True),
                    vault=DictVault({"webhook-api-key": SECRET}))
    async with engine:
        created = await engine.create("notify", {"payload": {"event": "order.paid"}})
        ok = await engine.wait(created.execution.id)
        print(f"valid input: {ok.status.value} {ok.context['delivery']}")
        check(ok.status.value == "completed", "valid input completes")
        check(ok.context["delivery"]["signed"] is True, "the secret reached the handler")
        history = await engine.history(ok.id)
        check(all(SECRET not in str(e.data) for e in history), "the secret is not in the log")
        check(SECRET not in str(ok.context) and SECRET not in str(ok.history),
              "the secret is not in the state")

        created = await engine.create("notify", {"payload": {"event": "", "retries": 99,
                                                             "url": "not a url"}})
        bad = await engine.wait(created.execution.id)
        assert bad.error is not None
        print(f"invalid input: {bad.status.value} {bad.error.code}: {bad.error.message}")
        check(bad.error.code == "INPUT_ERROR", "invalid input fails with INPUT_ERROR")
        check(all(f in bad.error.message for f in ("url", "event", "retries")),
              "the error names every bad field")
        print(f"metadata: {SendWebhook().metadata.to_dict()['name']}, input schema fields "
              f"{sorted(WebhookInput.model_json_schema()['properties'])}")
    print("class handlers OK")


if __name__ == "__main__":
    asyncio.run(main())
