"""The ``email-reply`` handler: send a mail over SMTP, then succeed or wait for a reply.

The mail is built from the step's config (:mod:`flowmonkey.handlers.email_message`:
templates over the context, the reply token in the Reply-To address and the subject)
and sent with aiosmtplib: ``security`` ``starttls`` (the default: STARTTLS is
required, a server that does not offer it fails the step), ``tls`` (implicit TLS,
port 465) or ``none``. Certificates are verified against the system's CAs, or against
the ``tls_context`` the operator gives the handler (a private CA). The password is a
vault secret (``smtp.passwordSecret``), read for each attempt and never logged, stored
or put in an error; logging in without TLS is refused.

Outcomes:

* sent, ``waitForReply`` false: success, output ``{messageId, to, subject}``;
* sent, ``waitForReply`` true: a signal wait (``replyTimeoutMs`` its timeout; the
  execution's wait timeout applies as to every wait) whose resume token is the one in
  the mail; a reply posted to ``POST /v1/inbound/email`` resumes the step with
  ``{text, from, subject}`` (:mod:`flowmonkey.api.inbound_email`);
* either way the result carries ``email.sent`` ``{to, subject, message_id}``, which the
  kernel records on the execution (:mod:`flowmonkey.kernel.step_events`);
* failures: ``INPUT_ERROR`` (config, a template's missing path, a bad address, a
  secret not in the vault), ``SMTP_UNREACHABLE`` (no connection, a timeout, the
  server hung up), ``SMTP_TLS_ERROR``, ``SMTP_AUTH_FAILED``, ``SMTP_REFUSED`` (sender
  or every recipient refused), ``SMTP_ERROR`` (anything else the server answered).
  Each takes the step's failure path, so its retry policy applies.
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections.abc import Mapping
from typing import Any

import aiosmtplib

from flowmonkey.events import names as n
from flowmonkey.handlers.base import HandlerMetadata, HandlerParams
from flowmonkey.handlers.config import ConfigError
from flowmonkey.handlers.email_message import (
    CONFIG_SCHEMA,
    EmailConfig,
    Mail,
    build_mail,
    parse_config,
)
from flowmonkey.model.result import HandlerEvent, Result, StepResult

log = logging.getLogger("flowmonkey.handlers.email")


class _SendFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EmailReplyHandler:
    """Send an email; succeed, or wait for its reply (type ``email-reply``)."""

    metadata = HandlerMetadata(
        type="email-reply",
        name="Email (and wait for the reply)",
        description="Send an email over SMTP from templates over the context; succeed at "
                    "once, or wait until a reply to it is posted to /v1/inbound/email.",
        category="external",
        config_schema=CONFIG_SCHEMA,
    )

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        """``tls_context``: how the SMTP server's certificate is checked (default: the
        system's CAs); an operator's choice, as no flow can name a CA file."""
        self._tls_context = tls_context

    def check_config(self, config: Mapping[str, Any],
                     step_ids: frozenset[str]) -> list[tuple[str, str]]:
        """What the schema cannot say (credentials without TLS, a lone username)."""
        try:
            parse_config(config)
        except ConfigError as exc:
            field, _, message = str(exc).partition(" ")
            return [(field, message)]
        return []

    async def execute(self, params: HandlerParams) -> StepResult:
        try:
            config = parse_config(params.config)
            token = secrets.token_hex(16) if config.wait_for_reply else None
            mail = build_mail(config, dict(params.context), params.attempt_id, token)
            password = await _password(config, params)
        except ConfigError as exc:
            return Result.failure("INPUT_ERROR", f"email-reply step {params.step.id!r}: {exc}")
        if params.abort.is_set():
            return Result.failure("ABORTED", "the step was aborted before the mail was sent")
        try:
            await self._send(config, mail, password)
        except _SendFailed as failed:
            return Result.failure(failed.code, f"email-reply step {params.step.id!r}: "
                                               f"{failed.message}")
        sent = HandlerEvent(n.EMAIL_SENT, {"to": list(mail.recipients),
                                           "subject": mail.subject,
                                           "message_id": mail.message_id})
        output: dict[str, Any] = {"messageId": mail.message_id, "to": list(mail.recipients),
                                  "subject": mail.subject}
        if token is None:
            return Result.success(output, events=(sent,))
        output["replyTo"] = mail.reply_to
        return Result.wait_for_signal(f"waiting for a reply to {mail.message_id}",
                                      resume_token=token, timeout_ms=config.reply_timeout_ms,
                                      output=output, events=(sent,))

    async def _send(self, config: EmailConfig, mail: Mail, password: str | None) -> None:
        smtp = config.smtp
        where = f"{smtp.host}:{smtp.port}"
        try:
            await aiosmtplib.send(
                mail.data(), sender=mail.sender, recipients=list(mail.recipients),
                hostname=smtp.host, port=smtp.port, username=smtp.username,
                password=password, use_tls=smtp.security == "tls",
                # never None (aiosmtplib's "if offered"): starttls requires it, and
                # none means none
                start_tls=smtp.security == "starttls",
                tls_context=self._tls_context if smtp.security != "none" else None,
                timeout=smtp.timeout_ms / 1000)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise _SendFailed("SMTP_AUTH_FAILED", f"the SMTP server {where} refused the "
                                                  f"login of {smtp.username!r}: {exc.code} "
                                                  f"{exc.message}") from None
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPRecipientsRefused) as exc:
            raise _SendFailed("SMTP_REFUSED", f"the SMTP server {where} refused the mail: "
                                              f"{_short(exc)}") from None
        except ssl.SSLError as exc:
            raise _SendFailed("SMTP_TLS_ERROR", f"TLS with the SMTP server {where} failed: "
                                                f"{_short(exc)}") from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise _SendFailed("SMTP_UNREACHABLE", f"could not reach the SMTP server {where}:"
                                                  f" {_short(exc)}") from None
        except aiosmtplib.SMTPException as exc:
            raise _SendFailed("SMTP_ERROR", f"the SMTP server {where} answered: "
                                            f"{_short(exc)}") from None
        log.info("sent mail %s to %d recipient(s) via %s", mail.message_id,
                 len(mail.recipients), where)


async def _password(config: EmailConfig, params: HandlerParams) -> str | None:
    name = config.smtp.password_secret
    if name is None:
        return None
    if params.vault is None:
        raise ConfigError(f"config.smtp.passwordSecret names {name!r}, but the engine has "
                          "no vault provider")
    secret = await params.vault.get_secret(name)
    if not secret:
        raise ConfigError(f"config.smtp.passwordSecret: the secret {name!r} is not in the "
                          "vault")
    return secret


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"
