"""A real local SMTP server for tests and examples: :class:`SmtpSink` keeps every mail
it is sent, so a test can read what an ``email-reply`` step mailed.

It is aiosmtpd's server in a thread of its own (aiosmtpd is a development dependency:
``pip install -e '.[dev]'``), on 127.0.0.1 and a free port. Optionally it offers
STARTTLS (``starttls_context``, required before anything else with
``require_starttls``), speaks implicit TLS (``tls_context``), and asks for a login
(``credentials``, only over TLS).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from flowmonkey.testing.services_common import HOST, free_port


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """A mail as the server took it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None

    def body(self, subtype: str = "plain") -> str:
        """The text (``plain``) or ``html`` part's content ("" without one), with the
        wire's CRLF line ends as ``\n``."""
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content()).replace("\r\n", "\n")


class SmtpSink:
    """A local SMTP server that keeps the mails it receives (``mails``)."""

    def __init__(self, *, port: int | None = None,
                 starttls_context: ssl.SSLContext | None = None,
                 require_starttls: bool = False, tls_context: ssl.SSLContext | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.mails: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._starttls_context = starttls_context
        self._require_starttls = require_starttls
        self._tls_context = tls_context
        self._credentials = credentials
        self._controller: Any = None

    def start(self) -> Self:
        from aiosmtpd.controller import Controller

        options: dict[str, Any] = {"require_starttls": self._require_starttls}
        if self._starttls_context is not None:
            options["tls_context"] = self._starttls_context
        if self._credentials is not None:
            options.update(auth_required=True, authenticator=self._authenticate)
        if self._tls_context is not None:
            options["ssl_context"] = self._tls_context
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                      **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        assert self._credentials is not None
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()) == self._credentials
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def _keep(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.mails.append(mail)

    async def wait_for(self, count: int = 1, timeout_s: float = 10.0) -> list[ReceivedMail]:
        """The mails once there are at least ``count`` (AssertionError at the
        deadline)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if len(self.mails) >= count:
                    return list(self.mails)
            assert time.monotonic() < deadline, \
                f"{count} mail(s) did not arrive within {timeout_s}s ({len(self.mails)} did)"
            await asyncio.sleep(0.01)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = getattr(session.auth_data, "login", None)
        self._sink._keep(ReceivedMail(
            mail_from=envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos), message=message,
            login=login.decode() if isinstance(login, bytes) else None))
        return "250 OK"
