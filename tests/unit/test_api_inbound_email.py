"""``POST /v1/inbound/email``: a signed reply resumes the ``email-reply`` step waiting
for it, with the mail sent to a real local SMTP server first; unsigned, forged,
unmatched and replayed replies are refused and counted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from flowmonkey import Engine
from flowmonkey.api import create_app
from flowmonkey.api.inbound_email import InboundEmail, InboundEmailSettings, reply_token
from flowmonkey.api.signatures import github_signature, stripe_signature
from flowmonkey.events import names as n
from flowmonkey.handlers import DictVaultProvider
from flowmonkey.testing.smtp import SmtpSink
from tests.behaviour.flows import flow, step
from tests.behaviour.smtp_support import CONTEXT, mail_config
from tests.unit.api_support import ADMIN, AUTH, bearer, eventually

SECRET = "inbound-signing-secret-0123456789"
TOKEN = "0123456789abcdef0123456789abcdef"


@dataclass
class Setup:
    client: httpx.AsyncClient
    engine: Engine
    sink: SmtpSink

    async def waiting(self) -> tuple[str, str]:
        """An execution waiting for the reply to its mail: (execution id, token)."""
        created = await self.engine.create("approve", CONTEXT)
        execution_id = created.execution.id

        async def token() -> str | None:
            execution = await self.engine.get(execution_id)
            assert execution is not None
            return execution.resume_token

        return execution_id, await eventually(token, what="the mail's wait")

    async def post(self, body: dict[str, Any] | bytes, *, secret: str | None = SECRET,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if secret is not None:
            sent["X-Hub-Signature-256"] = github_signature(secret, raw)
        return await self.client.post("/v1/inbound/email", content=raw, headers=sent)

    def counted(self, outcome: str) -> float:
        value = self.engine.metrics.registry.get_sample_value(
            "flowmonkey_inbound_emails_total", {"outcome": outcome})
        return value or 0.0


@asynccontextmanager
async def setup(settings: InboundEmailSettings | None = None) -> AsyncIterator[Setup]:
    with SmtpSink() as sink:
        approve = flow("approve", step("ask", "email-reply", output_key="reply", to="done",
                                       config=mail_config(sink.port, waitForReply=True)),
                       step("done", "transform", config={"expression": "input"}))
        engine = Engine(flows=[approve], vault=DictVaultProvider({"inbound": SECRET}))
        settings = settings or InboundEmailSettings(secret="inbound")
        async with engine:
            app = create_app(engine, AUTH, inbound_email=settings)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://api") as client:
                yield Setup(client, engine, sink)


def reply(token: str, **fields: Any) -> dict[str, Any]:
    return {"from": "Ann <ann@example.com>", "to": f"reply+{token}@example.com",
            "subject": "Re: Order o-1", "text": "Approved, go ahead.",
            "html": "<p>Approved</p>", "headers": {"Message-Id": "<r-1@example.com>"},
            "attachments": [], **fields}


async def test_a_signed_reply_resumes_the_step_with_its_text_sender_and_subject() -> None:
    async with setup() as s:
        execution_id, token = await s.waiting()
        [mail] = await s.sink.wait_for(1)
        assert mail.message["Reply-To"] == f"reply+{token}@example.com"

        answer = await s.post(reply(token))

        assert answer.status_code == 200, answer.text
        assert answer.json()["executionId"] == execution_id
        done = await s.client.get(f"/v1/executions/{execution_id}", headers=bearer(ADMIN))
        body = done.json()
        assert body["status"] == "completed"
        assert body["context"]["reply"] == {"text": "Approved, go ahead.",
                                            "from": "Ann <ann@example.com>",
                                            "subject": "Re: Order o-1"}
        events = (await s.client.get(f"/v1/executions/{execution_id}/events",
                                     headers=bearer(ADMIN))).json()["events"]
        received = [e for e in events if e["type"] == n.EMAIL_RECEIVED]
        assert [e["data"] for e in received] == [
            {"stepId": "ask", "from": "Ann <ann@example.com>", "subject": "Re: Order o-1"}]
        assert s.counted("resumed") == 1


async def test_a_reply_matched_by_the_subject_alone_resumes_too() -> None:
    async with setup() as s:
        execution_id, token = await s.waiting()

        answer = await s.post(reply(token, to="approvals@example.com",
                                    subject=f"RE: Order o-1 [ref:{token.upper()}]"))

        assert answer.status_code == 200, answer.text
        assert answer.json() == {"executionId": execution_id, "status": "completed"}


async def test_a_forged_reply_is_refused_and_the_step_keeps_waiting() -> None:
    async with setup() as s:
        execution_id, token = await s.waiting()

        forged = await s.post(reply(token), secret="not-the-secret")
        body = orjson.dumps(reply(token))
        altered = await s.post(body.replace(b"Approved", b"Rejected"), headers={
            "X-Hub-Signature-256": github_signature(SECRET, body)}, secret=None)
        unsigned = await s.post(reply(token), secret=None)

        assert [r.status_code for r in (forged, altered, unsigned)] == [401, 401, 401]
        assert {r.json()["error"]["message"] for r in (forged, altered, unsigned)} == \
            {"unauthorized"}
        execution = await s.engine.get(execution_id)
        assert execution is not None
        assert execution.status.value == "waiting"
        assert (s.counted("forged"), s.counted("unsigned")) == (2, 1)


async def test_an_unmatched_reply_is_refused_and_counted() -> None:
    async with setup() as s:
        await s.waiting()

        no_token = await s.post(reply(TOKEN, to="someone@example.com", subject="Hello"))
        unknown = await s.post(reply(TOKEN))

        assert [no_token.status_code, unknown.status_code] == [404, 404]
        assert unknown.json()["error"]["code"] == "REPLY_NOT_MATCHED"
        assert s.counted("unmatched") == 2


async def test_a_second_reply_with_the_same_token_is_refused() -> None:
    async with setup() as s:
        _, token = await s.waiting()
        assert (await s.post(reply(token))).status_code == 200

        again = await s.post(reply(token, text="Changed my mind"))

        assert again.status_code == 409
        assert again.json()["error"]["code"] == "TOKEN_USED"
        assert s.counted("refused") == 1


async def test_a_body_over_the_limit_is_413_and_bad_bodies_are_refused() -> None:
    async with setup(InboundEmailSettings(secret="inbound", max_body_bytes=2048)) as s:
        _, token = await s.waiting()

        huge = await s.post(reply(token, text="x" * 4096))
        not_json = await s.post(b"{not json")
        no_sender = await s.post({"to": f"reply+{token}@example.com", "text": "hi"})
        deep = await s.post(b"[" * 1000 + b"]" * 1000)

        assert huge.status_code == 413
        assert (not_json.status_code, deep.status_code) == (400, 400)
        assert no_sender.status_code == 422
        assert "from" in no_sender.json()["error"]["message"]
        assert (s.counted("too_large"), s.counted("invalid")) == (1, 3)


async def test_a_stripe_style_signature_with_a_stale_time_is_refused() -> None:
    async with setup(InboundEmailSettings(secret="inbound", signature="stripe")) as s:
        _, token = await s.waiting()
        body = orjson.dumps(reply(token))

        stale = await s.post(body, secret=None, headers={
            "Stripe-Signature": stripe_signature(SECRET, body, int(time.time()) - 3600)})
        fresh = await s.post(body, secret=None, headers={
            "Stripe-Signature": stripe_signature(SECRET, body, int(time.time()))})

        assert (stale.status_code, fresh.status_code) == (401, 200)


async def test_without_a_secret_configured_the_endpoint_is_off() -> None:
    async with setup(InboundEmailSettings()) as s:
        answer = await s.post(reply(TOKEN))

        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "INBOUND_EMAIL_DISABLED"


async def test_a_secret_missing_from_the_vault_is_503_without_naming_it() -> None:
    async with setup(InboundEmailSettings(secret="elsewhere")) as s:
        answer = await s.post(reply(TOKEN))

        assert answer.status_code == 503
        assert "elsewhere" not in answer.text


@pytest.mark.parametrize(("fields", "token"), [
    ({"to": ["x@y.io", f"Reply+{TOKEN.upper()}@Example.com"]}, TOKEN),
    ({"to": "x@y.io", "headers": {"Delivered-To": f"reply+{TOKEN}@example.com"}}, TOKEN),
    ({"to": "x@y.io", "subject": f"Re: hi [ref:{TOKEN}]"}, TOKEN),
    ({"to": "reply+short@example.com", "subject": "[ref:xyz]"}, None),
])
def test_the_reply_token_is_found_in_the_recipients_then_the_subject(
        fields: dict[str, Any], token: str | None) -> None:
    email = InboundEmail.model_validate({"from": "a@b.io", **fields})
    assert reply_token(email) == token


def test_settings_come_from_the_environment_and_bad_values_are_named() -> None:
    from flowmonkey.settings import SettingsError

    settings = InboundEmailSettings.from_env({
        "FLOWMONKEY_INBOUND_EMAIL_SECRET": "inbound",
        "FLOWMONKEY_INBOUND_EMAIL_SIGNATURE": "stripe",
        "FLOWMONKEY_INBOUND_EMAIL_MAX_BYTES": "4096"})
    assert settings == InboundEmailSettings("inbound", "stripe", 4096)
    assert InboundEmailSettings.from_env({}).secret is None
    with pytest.raises(SettingsError, match="FLOWMONKEY_INBOUND_EMAIL_SIGNATURE"):
        InboundEmailSettings.from_env({"FLOWMONKEY_INBOUND_EMAIL_SIGNATURE": "md5"})
    with pytest.raises(SettingsError, match="FLOWMONKEY_INBOUND_EMAIL_MAX_BYTES"):
        InboundEmailSettings.from_env({"FLOWMONKEY_INBOUND_EMAIL_MAX_BYTES": "lots"})
