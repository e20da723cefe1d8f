"""The ``email-reply`` step against a real local SMTP server (aiosmtpd, in-process):
what arrives, the reply token, TLS and logins, and how failures take the failure path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from flowmonkey import FlowValidationError, HandlerParams, Result, StepResult, handler
from flowmonkey.engine import Engine
from flowmonkey.events import names as n
from flowmonkey.events.types import payload
from flowmonkey.handlers import DictVaultProvider, EmailReplyHandler, builtin
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import HandlerEvent
from flowmonkey.testing import TestHarness
from flowmonkey.testing.services_common import free_port
from flowmonkey.testing.smtp import SmtpSink
from tests.behaviour.flows import flow, step, types_of
from tests.behaviour.smtp_support import CONTEXT, SelfSigned, mail_config, self_signed

PASSWORD = "pa55-w0rd-never-logged"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return self_signed(tmp_path_factory.mktemp("tls"))


def mail_flow(port: int, **config: Any) -> dict[str, Any]:
    retry = config.pop("retry", None)
    return flow("mail", step("send", "email-reply", config=mail_config(port, **config),
                             output_key="mail", to="done", retry=retry),
                step("done", "transform", config={"expression": "input"}))


async def test_the_mail_arrives_with_its_headers_text_and_html_and_the_step_succeeds(
        sink: SmtpSink) -> None:
    async with TestHarness(flows=[mail_flow(sink.port)]) as t:
        run = await t.run("mail", CONTEXT)

        t.assert_completed(run.execution)
        [mail] = await sink.wait_for(1)
        message = mail.message
        assert (message["From"], message["To"], message["Subject"]) == (
            "Shop <shop@example.com>", "Ann <ann@example.com>", "Order o-1")
        assert (mail.mail_from, mail.rcpt_tos) == ("shop@example.com", ("ann@example.com",))
        assert mail.body("plain").strip() == "Hello Ann, approve 12.5?"
        assert mail.body("html").strip() == "<p>Hello <b>Ann</b></p>"
        assert message["Reply-To"] is None  # nothing to reply to
        sent = run.execution.context["mail"]
        assert sent == {"messageId": message["Message-ID"], "to": ["ann@example.com"],
                        "subject": "Order o-1"}
        # the mail is on the execution's record, before the step's outcome
        types = types_of(run.events)
        assert types.index(n.EMAIL_SENT) == types.index(n.STEP_COMPLETED) - 1
        event = next(e for e in run.events if e.type == n.EMAIL_SENT)
        assert event.data == {"step_id": "send", "to": ["ann@example.com"],
                              "subject": "Order o-1", "message_id": message["Message-ID"]}
        payload(event)


async def test_a_mail_that_waits_carries_its_token_in_the_reply_address_and_subject(
        sink: SmtpSink) -> None:
    flows = [mail_flow(sink.port, waitForReply=True, replyDomain="replies.example.com")]
    async with TestHarness(flows=flows) as t:
        run = await t.run("mail", CONTEXT)

        assert run.execution.status == ExecutionStatus.WAITING
        token = run.execution.resume_token
        assert token is not None
        assert len(token) == 32
        [mail] = await sink.wait_for(1)
        assert mail.message["Reply-To"] == f"reply+{token}@replies.example.com"
        assert mail.message["Subject"] == f"Order o-1 [ref:{token}]"
        assert run.execution.context["mail"]["replyTo"] == f"reply+{token}@replies.example.com"


async def test_a_long_subject_arrives_on_one_line_with_its_reference(sink: SmtpSink) -> None:
    subject = "Please approve the purchase order ${order.id} for the new office " + "x" * 60
    async with TestHarness(flows=[mail_flow(sink.port, waitForReply=True,
                                            subject=subject)]) as t:
        run = await t.run("mail", CONTEXT)

        [mail] = await sink.wait_for(1)
        expected = subject.replace("${order.id}", "o-1")
        assert mail.message["Subject"] == f"{expected} [ref:{run.execution.resume_token}]"


async def test_a_reply_resumes_the_step_with_its_text_sender_and_subject(
        sink: SmtpSink) -> None:
    async with TestHarness(flows=[mail_flow(sink.port, waitForReply=True)]) as t:
        run = await t.run("mail", CONTEXT)
        token = run.execution.resume_token
        assert token is not None
        reply = {"text": "Approved.", "from": "ann@example.com", "subject": "Re: Order o-1"}

        await t.engine.resume(run.execution.id, token, reply,
                              email={"from": "ann@example.com", "subject": "Re: Order o-1"})
        done = await t.get(run.execution.id)

        assert done is not None
        t.assert_completed(done)
        assert done.context["mail"] == reply
        types = types_of(t.events_for(run.execution.id))
        assert types.index(n.EMAIL_RECEIVED) == types.index(n.TOKEN_USED) + 1
        assert types.index(n.EXECUTION_RESUMED) == types.index(n.EMAIL_RECEIVED) + 1
        received = next(e for e in t.events_for(run.execution.id)
                        if e.type == n.EMAIL_RECEIVED)
        assert received.data == {"step_id": "send", "from": "ann@example.com",
                                 "subject": "Re: Order o-1"}
        payload(received)


async def test_without_a_reply_the_wait_times_out(sink: SmtpSink) -> None:
    async with TestHarness(flows=[mail_flow(sink.port, waitForReply=True,
                                            replyTimeoutMs=60_000)]) as t:
        run = await t.run("mail", CONTEXT)
        await t.advance(60_000)

        ended = await t.get(run.execution.id)
        assert ended is not None
        assert ended.status == ExecutionStatus.CANCELLED
        assert n.TOKENS_CLEANED in types_of(t.events_for(run.execution.id))


async def test_starttls_with_a_self_signed_certificate_and_a_login_from_the_vault(
        certificate: SelfSigned) -> None:
    with SmtpSink(starttls_context=certificate.server(), require_starttls=True,
                  credentials=("shop", PASSWORD)) as sink:
        f = mail_flow(sink.port, security="starttls",
                      smtp={"username": "shop", "passwordSecret": "smtp-password"})
        async with TestHarness(flows=[f], vault=DictVaultProvider({"smtp-password": PASSWORD}),
                               handlers=[EmailReplyHandler(certificate.client())]) as t:
            run = await t.run("mail", CONTEXT)

            t.assert_completed(run.execution)
            [mail] = await sink.wait_for(1)
            assert mail.login == "shop"
            assert PASSWORD.encode() not in orjson.dumps([e.data for e in t.events])


async def test_implicit_tls(certificate: SelfSigned) -> None:
    with SmtpSink(tls_context=certificate.server()) as sink:
        f = mail_flow(sink.port, security="tls")
        async with TestHarness(flows=[f],
                               handlers=[EmailReplyHandler(certificate.client())]) as t:
            t.assert_completed((await t.run("mail", CONTEXT)).execution)
            await sink.wait_for(1)


async def test_a_certificate_the_handler_does_not_trust_fails_the_step(
        certificate: SelfSigned) -> None:
    with SmtpSink(starttls_context=certificate.server(), require_starttls=True) as sink:
        async with TestHarness(flows=[mail_flow(sink.port, security="starttls")]) as t:
            run = await t.run("mail", CONTEXT)

            t.assert_failed(run.execution, "SMTP_TLS_ERROR")
            assert sink.mails == []


async def test_a_wrong_password_fails_the_step_and_no_message_quotes_it(
        certificate: SelfSigned) -> None:
    with SmtpSink(starttls_context=certificate.server(), require_starttls=True,
                  credentials=("shop", "the-right-one")) as sink:
        f = mail_flow(sink.port, security="starttls",
                      smtp={"username": "shop", "passwordSecret": "smtp-password"})
        async with TestHarness(flows=[f], vault=DictVaultProvider({"smtp-password": PASSWORD}),
                               handlers=[EmailReplyHandler(certificate.client())]) as t:
            run = await t.run("mail", CONTEXT)

            t.assert_failed(run.execution, "SMTP_AUTH_FAILED")
            assert PASSWORD.encode() not in orjson.dumps([e.data for e in t.events])
            assert sink.mails == []


async def test_a_secret_missing_from_the_vault_fails_the_step_naming_it() -> None:
    f = mail_flow(free_port(), security="starttls",
                  smtp={"username": "shop", "passwordSecret": "smtp-password"})
    async with TestHarness(flows=[f], vault=DictVaultProvider({})) as t:
        run = await t.run("mail", CONTEXT)

        t.assert_failed(run.execution, "INPUT_ERROR")
        assert run.execution.error is not None
        assert "'smtp-password' is not in the vault" in run.execution.error.message


async def test_an_unreachable_server_fails_the_step_clearly_after_its_retries() -> None:
    port = free_port()  # nothing listens there
    f = mail_flow(port, retry={"maxAttempts": 2, "backoffMs": 0})
    async with TestHarness(flows=[f]) as t:
        run = await t.run("mail", CONTEXT)

        t.assert_failed(run.execution, "SMTP_UNREACHABLE")
        assert run.execution.error is not None
        assert f"could not reach the SMTP server 127.0.0.1:{port}" in \
            run.execution.error.message
        assert types_of(run.events).count(n.STEP_RETRY) == 2
        assert n.EMAIL_SENT not in types_of(run.events)


async def test_a_template_path_missing_from_the_context_fails_the_step_and_sends_nothing(
        sink: SmtpSink) -> None:
    async with TestHarness(flows=[mail_flow(sink.port)]) as t:
        run = await t.run("mail", {"customer": {"name": "Ann", "email": "ann@example.com"}})

        t.assert_failed(run.execution, "INPUT_ERROR")
        assert run.execution.error is not None
        assert "config.subject: ${order.id} is not in the context" in \
            run.execution.error.message
        assert sink.mails == []


async def test_a_line_break_in_the_context_adds_no_header(sink: SmtpSink) -> None:
    context = {**CONTEXT, "order": {"id": "o-1\r\nBcc: eve@example.com", "total": 1}}
    async with TestHarness(flows=[mail_flow(sink.port)]) as t:
        t.assert_completed((await t.run("mail", context)).execution)

        [mail] = await sink.wait_for(1)
        assert mail.message["Bcc"] is None
        assert mail.rcpt_tos == ("ann@example.com",)
        assert mail.message["Subject"] == "Order o-1 Bcc: eve@example.com"


async def test_an_address_from_the_context_that_is_not_one_address_is_refused(
        sink: SmtpSink) -> None:
    async with TestHarness(flows=[mail_flow(sink.port)]) as t:
        for email in ("ann@example.com, eve@example.com", "ann@example.com\r\nBcc: e@x.io",
                      "not an address"):
            context = {**CONTEXT, "customer": {"name": "Ann", "email": email}}
            run = await t.run("mail", context)
            t.assert_failed(run.execution, "INPUT_ERROR")
        assert sink.mails == []


@pytest.mark.parametrize(("smtp", "field"), [
    ({"host": "127.0.0.1", "username": "shop"}, "config.smtp.username"),
    ({"host": "127.0.0.1", "security": "none", "username": "u", "passwordSecret": "p"},
     "config.smtp.security"),
    ({"port": 25}, "config.smtp.host"),
    ({"host": "127.0.0.1", "security": "ssl"}, "config.smtp.security"),
])
def test_a_flow_with_a_bad_smtp_config_is_refused_when_registered(
        smtp: dict[str, Any], field: str) -> None:
    config = {**mail_config(25), "smtp": smtp}
    with pytest.raises(FlowValidationError) as info:
        Engine(flows=[flow("f", step("send", "email-reply", config=config))],
               handlers=builtin())
    assert info.value.field == field


@handler("liar")
async def liar(p: HandlerParams) -> StepResult:
    fake = HandlerEvent(n.EMAIL_SENT, {"to": ["x@example.com"], "subject": "s",
                                       "message_id": "<m@x>"})
    return Result.success(events=(fake,))


async def test_a_step_of_another_type_cannot_report_a_mail_sent() -> None:
    async with TestHarness(handlers=[liar], flows=[flow("lie", step("s", "liar"))]) as t:
        run = await t.run("lie")

        t.assert_failed(run.execution, "HANDLER_ERROR")
        assert run.execution.error is not None
        assert "a 'liar' step may not report a 'email.sent' event" in \
            run.execution.error.message
        assert n.EMAIL_SENT not in types_of(run.events)

