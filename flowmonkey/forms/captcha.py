"""Captcha verification: the :class:`CaptchaVerifier` protocol and the providers'
verify calls over httpx (reCAPTCHA, hCaptcha, Turnstile).

The three providers take the same request, a form-encoded POST of ``secret``,
``response`` (the token the client got from the widget) and ``remoteip``, and answer
JSON with ``success``. A verdict is ``passed``, ``failed`` (the provider said no, or
the client sent no token) or ``unreachable`` (no answer within the form's timeout, a
connection error, a 5xx, an answer that is not the provider's JSON): what an
unreachable provider means is the form's choice (``onUnreachable``: closed refuses,
open lets the submission through). The verify URLs default to the providers' own and
can be pointed elsewhere (``FLOWMONKEY_CAPTCHA_VERIFY_URLS``), e.g. at a fake in
tests. The secret is sent to the provider only, never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # loaded on the first verify: settings name the providers without it
    import httpx

log = logging.getLogger("flowmonkey.forms")

Provider = Literal["recaptcha", "hcaptcha", "turnstile"]
PROVIDERS: tuple[Provider, ...] = ("recaptcha", "hcaptcha", "turnstile")
VERIFY_URLS: dict[str, str] = {
    "recaptcha": "https://www.google.com/recaptcha/api/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
}
#: the field a client's widget posts its token in, per provider
TOKEN_FIELDS: dict[str, str] = {
    "recaptcha": "g-recaptcha-response",
    "hcaptcha": "h-captcha-response",
    "turnstile": "cf-turnstile-response",
}
MAX_TOKEN_CHARS = 4_096
MAX_ANSWER_BYTES = 64 * 1024

Outcome = Literal["passed", "failed", "unreachable"]


@dataclass(frozen=True, slots=True)
class CaptchaVerdict:
    outcome: Outcome
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


class CaptchaVerifier(Protocol):
    """Asks ``provider`` whether ``token`` is a solved captcha for ``secret``."""

    async def verify(self, provider: str, secret: str, token: str | None,
                     remote_ip: str | None, timeout_s: float) -> CaptchaVerdict: ...


class HttpCaptchaVerifier:
    """The providers' verify calls over httpx: a client per call (a captcha is checked
    once per submission; nothing is left open between them)."""

    def __init__(self, urls: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = {**VERIFY_URLS, **(urls or {})}
        self._transport = transport

    async def verify(self, provider: str, secret: str, token: str | None,
                     remote_ip: str | None, timeout_s: float) -> CaptchaVerdict:
        url = self.urls.get(provider)
        if url is None:
            return CaptchaVerdict("unreachable", f"no verify URL for provider {provider!r}")
        if not token:
            return CaptchaVerdict("failed", "no captcha token was sent")
        if len(token) > MAX_TOKEN_CHARS:
            return CaptchaVerdict("failed", "the captcha token is too long")
        import httpx

        form = {"secret": secret, "response": token}
        if remote_ip and remote_ip != "unknown":
            form["remoteip"] = remote_ip
        try:
            # no redirects: a verify endpoint answers, it does not send us elsewhere
            async with httpx.AsyncClient(transport=self._transport, follow_redirects=False,
                                         trust_env=False) as client:
                response = await client.post(url, data=form, timeout=timeout_s)
        except httpx.HTTPError as exc:
            log.warning("captcha provider %s unreachable: %s", provider, type(exc).__name__)
            return CaptchaVerdict("unreachable", f"{provider} did not answer "
                                                 f"({type(exc).__name__})")
        if response.status_code >= 500 or len(response.content) > MAX_ANSWER_BYTES:
            return CaptchaVerdict("unreachable", f"{provider} answered "
                                                 f"{response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            return CaptchaVerdict("unreachable", f"{provider} answered no JSON")
        if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
            return CaptchaVerdict("unreachable", f"{provider} answered no verdict")
        if answer["success"]:
            return CaptchaVerdict("passed")
        codes = answer.get("error-codes")
        shown = ", ".join(str(c)[:50] for c in codes[:5]) if isinstance(codes, list) else ""
        return CaptchaVerdict("failed", f"{provider} refused the token"
                                        + (f" ({shown})" if shown else ""))
