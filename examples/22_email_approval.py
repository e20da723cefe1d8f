"""An approval by email: an ``email-reply`` step mails the approver and waits; their
reply, posted by an inbound mail service, resumes the flow with the reply's text.

Everything runs in this process: a real SMTP server (aiosmtpd, the development
dependency the tests use) receives the mail, and the API app answers the inbound post
through ``httpx``'s ASGI transport. In production the step's ``smtp`` names your mail
server, and your inbound mail service (one that posts received mail as JSON) posts
replies to ``POST /v1/inbound/email``, signed with the vault secret that
``FLOWMONKEY_INBOUND_EMAIL_SECRET`` names. A reply is matched by the token in its
address (``reply+<token>@...``) or, failing that, in its subject (``[ref:<token>]``).

Run: python examples/22_email_approval.py
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx

from flowmonkey import Engine
from flowmonkey.api import create_app
from flowmonkey.api.inbound_email import InboundEmailSettings
from flowmonkey.api.signatures import github_signature
from flowmonkey.handlers import DictVaultProvider
from flowmonkey.testing.smtp import SmtpSink

INBOUND_SECRET = "shared-with-the-inbound-mail-service"


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


def approval_flow(smtp_port: int) -> dict[str, object]:
    ask = {
        "id": "ask", "type": "email-reply", "outputKey": "reply",
        "config": {
            "to": "${approver}", "from": "Expenses <expenses@example.com>",
            "subject": "Approve expense ${expense.id} (${expense.amount} EUR)?",
            "text": "${expense.who} spent ${expense.amount} EUR on ${expense.what}.\n"
                    "Reply YES to approve.",
            "html": "<p><b>${expense.who}</b> spent ${expense.amount} EUR on "
                    "${expense.what}.</p><p>Reply YES to approve.</p>",
            # a local server without TLS, for this example; use starttls (the default)
            # or tls, with username and passwordSecret (a vault secret's name), for real
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
            "waitForReply": True, "replyDomain": "replies.example.com",
            "replyTimeoutMs": 3 * 24 * 3600 * 1000,
        },
        "transitions": {"onSuccess": "decide"},
    }
    decide = {"id": "decide", "type": "transform", "outputKey": "approved",
              "config": {"expression": "'YES' in input.reply.text.upper()"},
              "transitions": {"onSuccess": None}}
    return {"id": "expense-approval", "version": "1.0.0", "initialStepId": "ask",
            "steps": {"ask": ask, "decide": decide}}


async def main() -> None:
    with SmtpSink() as smtp:
        engine = Engine(flows=[approval_flow(smtp.port)],
                        vault=DictVaultProvider({"inbound-email": INBOUND_SECRET}))
        async with engine:
            app = create_app(engine, auth=None,
                             inbound_email=InboundEmailSettings(secret="inbound-email"))
            created = await engine.create("expense-approval", {
                "approver": "Maria <maria@example.com>",
                "expense": {"id": "X-17", "who": "Tom", "amount": 420, "what": "a monitor"}})
            execution_id = created.execution.id

            [mail] = await smtp.wait_for(1)
            print(f"mail to {mail.message['To']}: {mail.message['Subject']!r}")
            print(f"  Reply-To: {mail.message['Reply-To']}")
            print(f"  {mail.body().strip()!r}")
            check(mail.body("html").startswith("<p><b>Tom</b>"), "the HTML part arrived")
            waiting = await engine.get(execution_id)
            check(waiting is not None and waiting.status.value == "waiting",
                  "the step waits for the reply")

            # what the inbound mail service posts when Maria answers
            reply = json.dumps({
                "from": "Maria <maria@example.com>", "to": mail.message["Reply-To"],
                "subject": f"Re: {mail.message['Subject']}", "text": "Yes, fine by me.",
            }).encode()
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://api") as client:
                forged = await client.post("/v1/inbound/email", content=reply, headers={
                    "X-Hub-Signature-256": github_signature("a guess", reply)})
                print(f"a forged reply -> {forged.status_code}")
                check(forged.status_code == 401, "a forged reply is refused")
                answer = await client.post("/v1/inbound/email", content=reply, headers={
                    "X-Hub-Signature-256": github_signature(INBOUND_SECRET, reply),
                    "Content-Type": "application/json"})
                print(f"the signed reply -> {answer.status_code} {answer.json()}")
                check(answer.status_code == 200, "the signed reply is accepted")

            done = await engine.wait(execution_id)
            print(f"{done.status.value}: approved={done.context['approved']['result']}, "
                  f"reply={done.context['reply']['text']!r}")
            check(done.context["approved"] == {"result": True}, "the reply approved it")
            history = [e.type for e in await engine.history(execution_id)]
            check("email.sent" in history and "email.received" in history,
                  "the mail and the reply are on the execution's history")
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
