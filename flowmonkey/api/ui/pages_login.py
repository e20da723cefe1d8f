"""``/ui`` itself, the login form and logout."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from flowmonkey.api.ui.render import page
from flowmonkey.api.ui.session import (
    COOKIE,
    COOKIE_PATH,
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_MAX_AGE_S,
    CheckedSession,
    Session,
    sessions_of,
)

log = logging.getLogger("flowmonkey.api")

router = APIRouter(include_in_schema=False)

HOME = "/ui/executions"
#: the longest key a login form takes (a configured key is far shorter)
MAX_KEY_CHARS = 1024


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of the explorer only (no other host)."""
    if not target or len(target) > 2000:
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui") or "\\" in target:
        return HOME
    return target


@router.get("/ui")
async def home(session: Session) -> Response:
    return RedirectResponse(HOME, status_code=303)


def _login_form(request: Request, *, status: int = 200, message: str = "") -> Response:
    sessions = sessions_of(request)
    token, cookie = sessions.login_token()
    response = page(request, "login.html", None, status=status, login_token=token,
                    message=message, next=safe_next(request.query_params.get("next")),
                    random_secret=sessions.random_secret)
    response.set_cookie(LOGIN_COOKIE, cookie, max_age=LOGIN_MAX_AGE_S, path=COOKIE_PATH,
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/ui/login")
async def login_form(request: Request) -> Response:
    if sessions_of(request).auth is None:
        return RedirectResponse(HOME, status_code=303)
    return _login_form(request)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    sessions = sessions_of(request)
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not sessions.login_token_ok(request.cookies.get(LOGIN_COOKIE),
                                   token if isinstance(token, str) else None):
        return _login_form(request, status=403,
                           message="The form was out of date; please try again.")
    key = form.get("api_key")
    key = key.strip() if isinstance(key, str) else ""
    session = sessions.login(key) if key and len(key) <= MAX_KEY_CHARS else None
    if session is None:
        client = request.client.host if request.client else "unknown"
        log.info("explorer: refused a login from %s: unknown API key", client)
        return _login_form(request, status=401, message="That API key is not valid.")
    target = form.get("next")
    response = RedirectResponse(safe_next(target if isinstance(target, str) else None),
                                status_code=303)
    sessions.set_cookie(request, response, session)
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/ui/logout")
async def logout(request: Request, session: CheckedSession) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response
