"""The explorer's sessions: an API key turned into a signed cookie, and CSRF tokens.

``POST /ui/login`` checks a key with the app's :class:`~flowmonkey.api.auth.ApiAuth`
and sets the ``fm_ui`` cookie: ``{tenant, admin, key fingerprint, csrf}`` signed with
itsdangerous (12 h at most). The fingerprint is an HMAC of the key under the signing
secret, never the key; each request looks it up among the configured keys again, so a
key taken out of the configuration ends its sessions. With ``auth=None`` (``--no-auth``)
every visitor is an admin: a session is made on the first request, for its CSRF token.

Every POST carries the session's token (a ``csrf_token`` field or ``X-CSRF-Token``);
``POST /ui/login`` is guarded by a double-submit token in a cookie of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from flowmonkey.api.auth import ApiAuth, ApiKey, Principal, valid_tenant_id
from flowmonkey.api.ui.errors import LoginRequired, UiError

COOKIE = "fm_ui"
LOGIN_COOKIE = "fm_ui_login"
COOKIE_PATH = "/ui"
MAX_AGE_S = 12 * 3600
#: a login form is good for this long (its double-submit cookie's life)
LOGIN_MAX_AGE_S = 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SALT = "flowmonkey-ui-session"
_LOGIN_SALT = "flowmonkey-ui-login"


@dataclass(frozen=True, slots=True)
class UiSession:
    """Who is looking: a key's tenant (``None`` and ``admin``: every tenant) and the
    session's CSRF token."""

    tenant_id: str | None
    admin: bool
    csrf: str
    fingerprint: str = ""

    def principal(self, tenant: str | None = None) -> Principal:
        """The API's principal for this session; an admin may narrow it to ``tenant``
        (a tenant key's own tenant always wins, as ``X-Tenant-Id`` does in the API)."""
        if not self.admin:
            return Principal(tenant_id=self.tenant_id, admin=False)
        if tenant and not valid_tenant_id(tenant):
            raise UiError(400, "Invalid tenant", "a tenant id is 1-200 letters, digits "
                          "and '._:@-'", code="INVALID_TENANT_ID")
        return Principal(tenant_id=tenant or None, admin=True)


class Sessions:
    """The app's session signer and its keys (``auth=None``: no login, admin for all)."""

    def __init__(self, auth: ApiAuth | None, secret: str | None) -> None:
        self.auth = auth
        self.random_secret = secret is None
        self.secret = secret if secret is not None else secrets.token_urlsafe(32)
        self._signer = URLSafeTimedSerializer(self.secret, salt=_SALT)
        self._login_signer = URLSafeTimedSerializer(self.secret, salt=_LOGIN_SALT)
        self._by_fingerprint: dict[str, ApiKey] = (
            {self.fingerprint(k.secret): k for k in auth.keys} if auth is not None else {})

    def fingerprint(self, key: str) -> str:
        """A short keyed hash of ``key``: names it in a cookie without giving it away."""
        digest = hmac.new(self.secret.encode(), key.encode("utf-8", "surrogateescape"),
                          hashlib.sha256)
        return digest.hexdigest()[:24]

    # ----------------------------------------------------------------- sessions

    def login(self, presented: str) -> UiSession | None:
        """The session for a presented key, or None when no configured key is it."""
        if self.auth is None:
            return self.anonymous()
        key = self.auth.match(presented)
        if key is None:
            return None
        return UiSession(key.tenant_id, key.admin, secrets.token_urlsafe(24),
                         self.fingerprint(key.secret))

    def anonymous(self) -> UiSession:
        return UiSession(None, True, secrets.token_urlsafe(24), "")

    def dumps(self, session: UiSession) -> str:
        return self._signer.dumps({"t": session.tenant_id, "a": session.admin,
                                   "f": session.fingerprint, "c": session.csrf})

    def loads(self, cookie: str | None) -> UiSession | None:
        """The session a cookie holds, if it is signed by us, young enough, and its key
        is still configured."""
        if not cookie:
            return None
        try:
            data: Any = self._signer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        fingerprint = data.get("f")
        if self.auth is None:
            return UiSession(None, True, data["c"], "")
        key = self._by_fingerprint.get(fingerprint) if isinstance(fingerprint, str) else None
        if key is None:
            return None  # the key is no longer configured (or the cookie is not ours)
        return UiSession(key.tenant_id, key.admin, data["c"], fingerprint or "")

    def set_cookie(self, request: Request, response: Response, session: UiSession) -> None:
        response.set_cookie(COOKIE, self.dumps(session), max_age=MAX_AGE_S, path=COOKIE_PATH,
                            httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    # -------------------------------------------------------------- login CSRF

    def login_token(self) -> tuple[str, str]:
        """(form token, cookie value) of a login form's double submit."""
        token = secrets.token_urlsafe(24)
        return token, self._login_signer.dumps(token)

    def login_token_ok(self, cookie: str | None, presented: str | None) -> bool:
        if not cookie or not presented:
            return False
        try:
            token: Any = self._login_signer.loads(cookie, max_age=LOGIN_MAX_AGE_S)
        except BadSignature:
            return False
        return isinstance(token, str) and hmac.compare_digest(token, presented)


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.ui_sessions
    return sessions


def current_session(request: Request) -> UiSession:
    """The request's session (dependency of every page): the cookie's, or a new one
    without auth (the page sets its cookie), or a redirect to the login page."""
    sessions = sessions_of(request)
    session = sessions.loads(request.cookies.get(COOKIE))
    if session is not None:
        return session
    if sessions.auth is None:
        session = sessions.anonymous()
        request.state.ui_new_session = session  # render.py sets the cookie
        return session
    raise LoginRequired()


async def checked_session(request: Request) -> UiSession:
    """:func:`current_session` for a POST: its CSRF token must be the session's."""
    session = current_session(request)
    presented = request.headers.get(CSRF_HEADER)
    if not presented:
        form = await request.form()  # cached by Starlette: the route reads it again
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not presented or not hmac.compare_digest(presented.encode(), session.csrf.encode()):
        raise UiError(403, "Refused", "the form's security token is missing or out of date: "
                      "reload the page and try again", code="CSRF_FAILED")
    return session


Session = Annotated[UiSession, Depends(current_session)]
CheckedSession = Annotated[UiSession, Depends(checked_session)]
