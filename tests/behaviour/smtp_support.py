"""Shared pieces of the email tests: a self-signed certificate and an ``email-reply``
step's config for a local SMTP server."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class SelfSigned:
    """A certificate for 127.0.0.1 and localhost, and the contexts of both ends."""

    cert: Path
    key: Path

    def server(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client(self) -> ssl.SSLContext:
        """A context that trusts this certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.cert))


def self_signed(folder: Path) -> SelfSigned:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return SelfSigned(cert, key)


def mail_config(port: int, *, security: str = "none", **extra: Any) -> dict[str, Any]:
    """A mail to the context's customer, with text and HTML, through 127.0.0.1:port."""
    smtp: dict[str, Any] = {"host": "127.0.0.1", "port": port, "security": security,
                            "timeoutMs": 5000}
    smtp.update(extra.pop("smtp", {}))
    return {"to": "${customer.name} <${customer.email}>", "from": "Shop <shop@example.com>",
            "subject": "Order ${order.id}", "text": "Hello ${customer.name}, approve "
            "${order.total}?", "html": "<p>Hello <b>${customer.name}</b></p>",
            "smtp": smtp, **extra}


CONTEXT = {"customer": {"name": "Ann", "email": "ann@example.com"},
           "order": {"id": "o-1", "total": 12.5}}
