"""What ``POST /v1/inbound/email`` does: a reply to an ``email-reply`` step's mail,
posted by an inbound mail service, resumes the step that waits for it.

No API key: the post authenticates itself by an HMAC-SHA256 signature over the raw
body (:mod:`flowmonkey.api.signatures`, as webhooks), with a vault secret whose name
the settings give (:class:`InboundEmailSettings`). In order:

1. the endpoint is not configured (no secret named): 404;
2. the body, read raw and counted as it streams: 413 past ``max_body_bytes``;
3. the signature: 401 without detail (counted ``unsigned`` when missing, ``forged``
   when wrong or stale); a secret the vault lacks: 503;
4. the body: JSON ``{from, to, subject, text, html?, headers?}`` (the shape inbound
   mail services post; other fields are ignored): 400 if it is not JSON, 422 naming
   the field if a field is wrong or too long;
5. the reply token: from a ``reply+<token>@…`` recipient (``to``, else one of the
   :data:`RECIPIENT_HEADERS`), else ``[ref:<token>]`` in the subject; none, or one
   never issued: 404 (``unmatched``);
6. the resume, ``{text, from, subject}`` as its data and ``{from, subject}`` as the
   inbound email the kernel records (``email.received``): 200 ``{executionId,
   status}``; a token used, expired or revoked, or an execution no longer waiting,
   answers as ``POST /v1/executions/{id}/resume`` would (409, ``refused``).

Every post is counted in ``flowmonkey_inbound_emails{outcome}``. A token is looked up
in the projection (which execution it was issued to); whether it still works is
decided by that execution's processor, so a reply can resume a step only once.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from flowmonkey.api.body_limit import read_body
from flowmonkey.api.errors import ApiError, status_of
from flowmonkey.api.schemas import InboundEmailResumed
from flowmonkey.api.signatures import check, default_header
from flowmonkey.engine import Engine
from flowmonkey.errors import CommandRejected
from flowmonkey.handlers.email_message import REPLY_PREFIX, TOKEN_PATTERN
from flowmonkey.kernel.step_events import MAX_ADDRESS_CHARS, MAX_HEADER_CHARS, MAX_RECIPIENTS
from flowmonkey.settings import (
    ENV_INBOUND_EMAIL_MAX_BYTES,
    ENV_INBOUND_EMAIL_SECRET,
    ENV_INBOUND_EMAIL_SIGNATURE,
    SettingsError,
)

log = logging.getLogger("flowmonkey.api")

DEFAULT_MAX_BYTES = 1024 * 1024
MAX_MAX_BYTES = 10 * 1024 * 1024
STRIPE_TOLERANCE_S = 300
MAX_HEADERS = 200
#: the headers a recipient address may be found in when ``to`` has no reply address
#: (a service that posts the envelope recipient there, or a forwarding hop's)
RECIPIENT_HEADERS = ("to", "delivered-to", "x-original-to")
_ADDRESS = re.compile(re.escape(REPLY_PREFIX) + f"({TOKEN_PATTERN})@", re.IGNORECASE)
_REF = re.compile(rf"\[ref:({TOKEN_PATTERN})\]", re.IGNORECASE)

UNAUTHORIZED = ApiError(401, "UNAUTHENTICATED", "unauthorized")
"""The answer to any refused signature: the same, whatever was wrong."""


@dataclass(frozen=True, slots=True)
class InboundEmailSettings:
    """``secret``: the name of the vault secret posts are signed with (None: off)."""

    secret: str | None = None
    signature: str = "github"
    max_body_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.signature not in ("github", "stripe"):
            raise SettingsError(f"{ENV_INBOUND_EMAIL_SIGNATURE} must be github or stripe, "
                                f"not {self.signature!r}")
        if not 1 <= self.max_body_bytes <= MAX_MAX_BYTES:
            raise SettingsError(f"{ENV_INBOUND_EMAIL_MAX_BYTES} must be from 1 to "
                                f"{MAX_MAX_BYTES}, not {self.max_body_bytes}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InboundEmailSettings:
        source = os.environ if env is None else env
        size = source.get(ENV_INBOUND_EMAIL_MAX_BYTES, "").strip()
        if size and not size.isdigit():
            raise SettingsError(f"{ENV_INBOUND_EMAIL_MAX_BYTES} must be a number of bytes, "
                                f"not {size!r}")
        return cls(secret=source.get(ENV_INBOUND_EMAIL_SECRET, "").strip() or None,
                   signature=source.get(ENV_INBOUND_EMAIL_SIGNATURE, "").strip() or "github",
                   max_body_bytes=int(size) if size else DEFAULT_MAX_BYTES)


_Address = Annotated[str, StringConstraints(max_length=MAX_ADDRESS_CHARS * 4)]


class InboundEmail(BaseModel):
    """The fields of an inbound mail service's post that a reply needs (the services
    post many more: ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sender: _Address = Field(alias="from", min_length=1)
    to: _Address | list[_Address] = Field(default_factory=list)
    subject: str = Field(default="", max_length=MAX_HEADER_CHARS * 4)
    text: str = Field(default="", max_length=MAX_MAX_BYTES)
    html: str | None = Field(default=None, max_length=MAX_MAX_BYTES)
    headers: dict[str, str] | None = Field(default=None, max_length=MAX_HEADERS)

    @field_validator("to")
    @classmethod
    def _few_recipients(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) > MAX_RECIPIENTS * 20:
            raise ValueError(f"at most {MAX_RECIPIENTS * 20} recipients")
        return value


def reply_token(email: InboundEmail) -> str | None:
    """The reply token ``email`` carries (lower case), or None."""
    recipients = [email.to] if isinstance(email.to, str) else list(email.to)
    headers = {k.lower(): v for k, v in (email.headers or {}).items()}
    recipients += [headers[name] for name in RECIPIENT_HEADERS if name in headers]
    for text in recipients:
        found = _ADDRESS.search(text[:MAX_ADDRESS_CHARS * MAX_RECIPIENTS])
        if found:
            return found.group(1).lower()
    found = _REF.search(email.subject)
    return found.group(1).lower() if found else None


class InboundEmails:
    """The inbound email endpoint of one API app."""

    def __init__(self, engine: Engine, settings: InboundEmailSettings) -> None:
        self.engine = engine
        self.settings = settings

    def _count(self, outcome: str) -> None:
        self.engine.metrics.inbound_emails.labels(outcome).inc()

    async def receive(self, request: Request) -> InboundEmailResumed:
        try:
            execution_id, status = await self._receive(request)
        except _Refused as refused:
            self._count(refused.outcome)
            raise refused.error from None
        self._count("resumed")
        return InboundEmailResumed(execution_id=execution_id, status=status)

    async def _receive(self, request: Request) -> tuple[str, str]:
        settings = self.settings
        if settings.secret is None:
            raise _Refused("disabled", ApiError(
                404, "INBOUND_EMAIL_DISABLED", "inbound email is not configured on this "
                f"server ({ENV_INBOUND_EMAIL_SECRET})"))
        try:
            body = await read_body(request, settings.max_body_bytes)
        except ApiError as exc:
            raise _Refused("too_large", exc) from None
        header = request.headers.get(default_header(settings.signature))
        if not header:
            raise _Refused("unsigned", UNAUTHORIZED)
        verdict = check(settings.signature, await self._secret(settings.secret), body, header,
                        now_s=time.time(), tolerance_s=STRIPE_TOLERANCE_S)
        if not verdict.ok:
            raise _Refused("forged", UNAUTHORIZED)
        email = _parse(body)
        token = reply_token(email)
        execution_id = await self.engine.projection.token_execution(token) if token else None
        if token is None or execution_id is None:
            raise _Refused("unmatched", ApiError(
                404, "REPLY_NOT_MATCHED", "the email carries no reply token of a mail this "
                "server sent (reply+<token>@ in the recipients, or [ref:<token>] in the "
                "subject)"))
        reply = {"text": email.text, "from": email.sender, "subject": email.subject}
        try:
            execution = await self.engine.resume(
                execution_id, token, reply,
                email={"from": email.sender, "subject": email.subject})
        except CommandRejected as exc:
            raise _Refused("refused", ApiError(status_of(exc), exc.code, exc.message)) \
                from None
        return execution.id, execution.status.value

    async def _secret(self, name: str) -> str:
        vault = self.engine.vault
        secret = await vault.get_secret(name) if vault is not None else None
        if not secret:
            log.error("inbound email: its secret %r is not in the vault%s", name,
                      "" if vault is not None else " (the API has no vault provider)")
            raise _Refused("failed", ApiError(
                503, "INBOUND_EMAIL_SECRET_UNAVAILABLE", "the inbound email secret is not "
                "available; the server log says which"))
        return secret


class _Refused(Exception):
    def __init__(self, outcome: str, error: ApiError) -> None:
        super().__init__(error.message)
        self.outcome = outcome
        self.error = error


def _parse(body: bytes) -> InboundEmail:
    try:
        raw: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Refused("invalid", ApiError(400, "INVALID_BODY", "the body is not JSON")) \
            from None
    if not isinstance(raw, dict):
        raise _Refused("invalid", ApiError(400, "INVALID_BODY",
                                           "the body must be a JSON object"))
    try:
        return InboundEmail.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
            for e in exc.errors(include_input=False))
        raise _Refused("invalid", ApiError(422, "VALIDATION_ERROR",
                                           f"the email is not usable: {problems}")) from None
