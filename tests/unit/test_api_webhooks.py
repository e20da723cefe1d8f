"""``POST /v1/hooks/{trigger_id}``: signed deliveries start their trigger's flow once.

Signatures right, wrong, missing, stale and over a body altered by one byte; a
retried delivery; the body limit; unknown, non-webhook and paused triggers; a mapping
error; ``requireApiKey`` with tenant scoping; bad signatures recorded at most once a
second; the secret never in an event."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from flowmonkey import Engine
from flowmonkey.api.signatures import github_signature, stripe_signature
from flowmonkey.events import names as n
from flowmonkey.metrics import Metrics
from flowmonkey.model.trigger import entity_id
from tests.unit.api_support import (
    ADMIN,
    GREET,
    KEY_A,
    KEY_B,
    api_client,
    bearer,
    eventually,
    greet,
)

SECRET = "whsec-test-0123456789"
BODY = orjson.dumps({"name": "octocat", "order": {"id": "A-1"}})


class Vault:
    def __init__(self, **secrets: str) -> None:
        self.secrets = secrets
        self.asked: list[str] = []

    async def get_secret(self, name: str) -> str | None:
        self.asked.append(name)
        return self.secrets.get(name)


def _triggers() -> list[dict[str, Any]]:
    return [
        {"id": "gh", "kind": "webhook", "flowId": "greet", "tenantId": "tenant-a",
         "webhook": {"secret": "gh-secret", "deliveryHeader": "X-GitHub-Delivery"}},
        {"id": "stripe", "kind": "webhook", "flowId": "greet", "tenantId": "tenant-a",
         "webhook": {"secret": "stripe-secret", "signature": "stripe", "toleranceS": 300}},
        {"id": "small", "kind": "webhook", "flowId": "greet",
         "webhook": {"secret": "gh-secret", "maxBodyBytes": 64}},
        {"id": "keyed", "kind": "webhook", "flowId": "greet", "tenantId": "tenant-a",
         "webhook": {"requireApiKey": True}},
        {"id": "mapped", "kind": "webhook", "flowId": "greet",
         "idempotencyKey": {"type": "path", "path": "body.order"},
         "webhook": {"secret": "gh-secret"}},
        {"id": "by-key", "kind": "webhook", "flowId": "greet",
         "idempotencyKey": {"type": "path", "path": "body.order.id"},
         "context": {"type": "template", "template": {"who": "${body.name}"}},
         "webhook": {"secret": "gh-secret"}},
        {"id": "nightly", "kind": "schedule", "flowId": "greet",
         "schedule": {"cron": "0 3 * * *"}},
    ]


@asynccontextmanager
async def hooks() -> AsyncIterator[tuple[httpx.AsyncClient, Engine]]:
    engine = Engine(flows=[GREET], handlers=[greet], triggers=_triggers(),
                    vault=Vault(**{"gh-secret": SECRET, "stripe-secret": SECRET}),
                    metrics=Metrics())
    async with api_client(engine=engine) as client:
        async def registered() -> bool:
            page = await engine.projection.list_triggers()
            return len(page.items) == len(_triggers())

        await eventually(registered, what="every trigger registered")
        yield client, engine


def signed(body: bytes = BODY, secret: str = SECRET,
           delivery: str | None = None) -> dict[str, str]:
    headers = {"X-Hub-Signature-256": github_signature(secret, body),
               "content-type": "application/json"}
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    return headers


async def _failures(engine: Engine, trigger_id: str) -> list[dict[str, Any]]:
    return [e.data for e in await engine.history(entity_id(trigger_id))
            if e.type == n.TRIGGER_FAILED]


async def test_a_signed_delivery_starts_the_flow_with_the_body_as_context() -> None:
    async with hooks() as (client, engine):
        response = await client.post("/v1/hooks/gh", content=BODY,
                                     headers=signed(delivery="d-1"))
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["triggerId"], body["duplicate"]) == ("gh", False)
        execution = await engine.wait(body["executionId"])
        assert execution.context["name"] == "octocat"
        assert execution.tenant_id == "tenant-a"
        assert (execution.metadata or {})["trigger"]["id"] == "gh"
        events = await engine.history(entity_id("gh"))
        fired = [e for e in events if e.type == n.TRIGGER_FIRED]
        assert len(fired) == 1
        # what arrived is in the event, the secret and the signature are not
        assert SECRET not in orjson.dumps([e.data for e in events]).decode()
        assert "x-hub-signature-256" not in orjson.dumps(
            [e.data for e in events]).decode().lower()


async def test_a_retried_delivery_answers_with_the_first_execution() -> None:
    async with hooks() as (client, engine):
        first = await client.post("/v1/hooks/gh", content=BODY,
                                  headers=signed(delivery="d-7"))
        assert first.status_code == 202, first.text
        await engine.wait(first.json()["executionId"])
        again = await client.post("/v1/hooks/gh", content=BODY,
                                  headers=signed(delivery="d-7"))
        assert again.status_code == 202, again.text
        assert again.json() == {**first.json(), "duplicate": True}
        other = await client.post("/v1/hooks/gh", content=BODY,
                                  headers=signed(delivery="d-8"))
        assert other.json()["executionId"] != first.json()["executionId"]
        await engine.wait(other.json()["executionId"])
        page = await engine.list(flow_id="greet")
        assert len(page.items) == 2


async def test_an_idempotency_key_from_the_body_dedupes_and_a_template_maps() -> None:
    async with hooks() as (client, engine):
        first = await client.post("/v1/hooks/by-key", content=BODY, headers=signed())
        again = await client.post("/v1/hooks/by-key", content=BODY, headers=signed())
        assert first.status_code == 202, first.text
        assert again.json()["executionId"] == first.json()["executionId"]
        assert again.json()["duplicate"] is True
        execution = await engine.wait(first.json()["executionId"])
        assert execution.context["who"] == "octocat"
        assert execution.idempotency_key is not None


async def test_wrong_missing_and_altered_signatures_are_401_without_detail() -> None:
    async with hooks() as (client, engine):
        altered = BODY[:-2] + b"X}"
        for headers, content in (
                (signed(secret="another-secret"), BODY),
                ({"content-type": "application/json"}, BODY),
                ({"X-Hub-Signature-256": "sha256=nothex"}, BODY),
                (signed(), altered)):
            response = await client.post("/v1/hooks/gh", content=content, headers=headers)
            assert response.status_code == 401, response.text
            assert response.json() == {"error": {"code": "UNAUTHENTICATED",
                                                 "message": "unauthorized"}}
        assert (await engine.list(flow_id="greet")).items == []


async def test_bad_signatures_are_recorded_at_most_once_a_second() -> None:
    async with hooks() as (client, engine):
        for _ in range(5):
            response = await client.post("/v1/hooks/gh", content=BODY,
                                         headers=signed(secret="nope"))
            assert response.status_code == 401
        failures = await eventually(lambda: _failures(engine, "gh"),
                                    what="the refused signature recorded")
        assert [f["code"] for f in failures] == ["BAD_SIGNATURE"]
        assert "mismatch" in failures[0]["message"]
        rendered = engine.metrics.render().decode()
        assert 'flowmonkey_trigger_webhooks_total{outcome="bad_signature",trigger="gh"} 5.0' \
            in rendered


async def test_stripe_signatures_and_a_stale_timestamp() -> None:
    async with hooks() as (client, _engine):
        now = int(time.time())
        fresh = {"Stripe-Signature": stripe_signature(SECRET, BODY, now)}
        response = await client.post("/v1/hooks/stripe", content=BODY, headers=fresh)
        assert response.status_code == 202, response.text
        stale = {"Stripe-Signature": stripe_signature(SECRET, BODY, now - 301)}
        response = await client.post("/v1/hooks/stripe", content=BODY, headers=stale)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "unauthorized"


async def test_a_body_over_the_limit_is_413_declared_or_streamed() -> None:
    async with hooks() as (client, _engine):
        big = orjson.dumps({"pad": "x" * 100})
        response = await client.post("/v1/hooks/small", content=big, headers=signed(big))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "BODY_TOO_LARGE"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 16

        streamed = await client.post("/v1/hooks/small", content=chunks(),
                                     headers={"X-Hub-Signature-256": "sha256=00"})
        assert streamed.status_code == 413
        fits = orjson.dumps({"a": 1})
        ok = await client.post("/v1/hooks/small", content=fits, headers=signed(fits))
        assert ok.status_code == 202, ok.text


async def test_unknown_and_non_webhook_triggers_are_404() -> None:
    async with hooks() as (client, _engine):
        assert (await client.post("/v1/hooks/nope", content=BODY,
                                  headers=signed())).status_code == 404
        assert (await client.post("/v1/hooks/nightly", content=BODY,
                                  headers=signed())).status_code == 404


async def test_a_paused_trigger_is_409_and_the_failure_recorded() -> None:
    async with hooks() as (client, engine):
        paused = await client.post("/v1/triggers/gh/pause", headers=bearer(ADMIN),
                                   json={"reason": "maintenance"})
        assert paused.status_code == 200, paused.text
        assert paused.json()["enabled"] is False
        response = await client.post("/v1/hooks/gh", content=BODY, headers=signed())
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "TRIGGER_DISABLED"
        assert [f["code"] for f in await _failures(engine, "gh")] == ["TRIGGER_DISABLED"]
        resumed = await client.post("/v1/triggers/gh/resume", headers=bearer(ADMIN))
        assert resumed.json()["enabled"] is True
        again = await client.post("/v1/hooks/gh", content=BODY, headers=signed())
        assert again.status_code == 202, again.text
        record = await engine.projection.get_trigger("gh")
        assert record is not None
        assert (record.fired, record.failed) == (1, 1)


async def test_a_mapping_error_is_422_naming_the_field() -> None:
    async with hooks() as (client, engine):
        response = await client.post("/v1/hooks/mapped", content=BODY, headers=signed())
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "MAPPING_ERROR"
        assert "idempotencyKey" in error["message"]
        assert "mapped" in error["message"]
        assert [f["code"] for f in await _failures(engine, "mapped")] == ["MAPPING_ERROR"]


async def test_a_body_that_is_not_json_is_400() -> None:
    async with hooks() as (client, _engine):
        response = await client.post("/v1/hooks/gh", content=b"not json",
                                     headers=signed(b"not json"))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_BODY"


async def test_require_api_key_takes_a_key_of_the_triggers_tenant() -> None:
    async with hooks() as (client, engine):
        none = await client.post("/v1/hooks/keyed", content=BODY)
        assert none.status_code == 401
        other = await client.post("/v1/hooks/keyed", content=BODY, headers=bearer(KEY_B))
        assert other.status_code == 404
        mine = await client.post("/v1/hooks/keyed", content=BODY, headers=bearer(KEY_A))
        assert mine.status_code == 202, mine.text
        admin = await client.post("/v1/hooks/keyed", content=BODY, headers=bearer(ADMIN))
        assert admin.status_code == 202, admin.text
        execution = await engine.wait(mine.json()["executionId"])
        assert execution.tenant_id == "tenant-a"
        # the key is not kept in what arrived
        events = await engine.history(entity_id("keyed"))
        assert KEY_A not in orjson.dumps([e.data for e in events]).decode()


async def test_a_missing_secret_is_503_and_names_no_secret() -> None:
    engine = Engine(flows=[GREET], handlers=[greet], triggers=_triggers()[:1],
                    vault=Vault())
    async with api_client(engine=engine) as client:
        await eventually(lambda: engine.projection.get_trigger("gh"), what="registered")
        response = await client.post("/v1/hooks/gh", content=BODY, headers=signed())
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "TRIGGER_SECRET_UNAVAILABLE"
        assert "gh-secret" not in response.text
