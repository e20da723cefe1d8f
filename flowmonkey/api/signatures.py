"""Webhook signatures: HMAC-SHA256 over the raw body, pure functions.

Two styles (``WebhookSettings.signature``):

* ``github``: the header holds ``sha256=<hex>``, the HMAC-SHA256 of the body with the
  secret (``X-Hub-Signature-256``).
* ``stripe``: the header holds ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``, each ``v1``
  an HMAC-SHA256 of ``"<t>.<body>"`` (``Stripe-Signature``); a ``t`` further than the
  tolerance from now is refused, so a captured request cannot be replayed later.

Every comparison is :func:`hmac.compare_digest` of equal-length digests. A check
answers only *whether* the request is authentic, plus a reason for metrics and the
audit trail; the HTTP answer to any failure is the same 401 without detail.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

GITHUB_HEADER = "X-Hub-Signature-256"
STRIPE_HEADER = "Stripe-Signature"

#: the most ``v1`` signatures one header may carry (a sender rotating secrets sends two)
MAX_STRIPE_SIGNATURES = 8
_MAX_HEADER_CHARS = 2048

Reason = Literal["missing", "malformed", "stale", "mismatch"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: ``ok``, or why not."""

    ok: bool
    reason: Reason | None = None


OK = Verdict(True)


def default_header(signature: str) -> str:
    """The header a signature style is read from unless the settings name another."""
    return STRIPE_HEADER if signature == "stripe" else GITHUB_HEADER


def _digest(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()


def _hex_bytes(text: str) -> bytes | None:
    if len(text) != 64:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def github_signature(secret: str, body: bytes) -> str:
    """The ``sha256=<hex>`` value a sender puts in the header."""
    return "sha256=" + _digest(secret, body).hex()


def check_github(secret: str, body: bytes, header: str | None) -> Verdict:
    """Whether ``header`` is the body's ``sha256=<hex>`` signature with ``secret``."""
    if not header:
        return Verdict(False, "missing")
    scheme, sep, value = header.strip().partition("=")
    given = _hex_bytes(value.strip().lower()) if sep and scheme.lower() == "sha256" else None
    if given is None:
        return Verdict(False, "malformed")
    if not hmac.compare_digest(_digest(secret, body), given):
        return Verdict(False, "mismatch")
    return OK


def stripe_signature(secret: str, body: bytes, timestamp_s: int) -> str:
    """The ``t=...,v1=...`` value a sender puts in the header at ``timestamp_s``."""
    payload = str(timestamp_s).encode() + b"." + body
    return f"t={timestamp_s},v1={_digest(secret, payload).hex()}"


def check_stripe(secret: str, body: bytes, header: str | None, *, now_s: float,
                 tolerance_s: int) -> Verdict:
    """Whether ``header`` holds a ``v1`` signature of ``"<t>.<body>"`` with ``secret``
    and a ``t`` within ``tolerance_s`` of ``now_s``."""
    if not header:
        return Verdict(False, "missing")
    if len(header) > _MAX_HEADER_CHARS:
        return Verdict(False, "malformed")
    timestamp: str | None = None
    signatures: list[bytes] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t" and timestamp is None:
            timestamp = value.strip()
        elif name == "v1" and len(signatures) < MAX_STRIPE_SIGNATURES:
            parsed = _hex_bytes(value.strip().lower())
            if parsed is not None:
                signatures.append(parsed)
    if timestamp is None or not timestamp.isdigit() or len(timestamp) > 12 or not signatures:
        return Verdict(False, "malformed")
    expected = _digest(secret, timestamp.encode() + b"." + body)
    matched = False
    for given in signatures:  # every one compared: the time says nothing of which
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        return Verdict(False, "mismatch")
    if abs(now_s - int(timestamp)) > tolerance_s:
        return Verdict(False, "stale")
    return OK


def check(signature: str, secret: str, body: bytes, header: str | None, *, now_s: float,
          tolerance_s: int) -> Verdict:
    """The check of the ``signature`` style (``github`` or ``stripe``)."""
    if signature == "stripe":
        return check_stripe(secret, body, header, now_s=now_s, tolerance_s=tolerance_s)
    return check_github(secret, body, header)
