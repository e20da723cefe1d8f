"""Rendering the explorer's pages: one Jinja environment (autoescape on for every
template), :func:`page` for a whole page and :func:`partial` for an htmx fragment.

Every page gets the common context: ``session`` (who is looking), ``csrf`` (the token
each POST carries), ``nav`` and ``section`` (the current nav entry), ``tenant`` (an
admin's tenant filter) and ``request``. Values are shown through the filters here
(``when``, ``ms``, ``json``), which bound what they print.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from flowmonkey.api.times import iso_utc, iso_utc_ms
from flowmonkey.api.ui.errors import UiError
from flowmonkey.api.ui.session import COOKIE, UiSession, sessions_of

#: (label, path) of the nav bar, in order
NAV: tuple[tuple[str, str], ...] = (
    ("Executions", "/ui/executions"),
    ("Flows", "/ui/flows"),
    ("Tables", "/ui/tables"),
    ("WAL", "/ui/wal"),
    ("Jobs", "/ui/jobs"),
    ("Triggers", "/ui/triggers"),
    ("Forms", "/ui/forms"),
    ("Health", "/ui/health"),
)

#: the most characters of a JSON value a page prints (the rest is cut, and says so)
MAX_JSON_CHARS = 20_000

#: sent with every page: scripts only from here (htmx and ui.js), no framing
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(value: datetime | int | None) -> str:
    """A point in time as the API writes it (epoch milliseconds too); '' for None."""
    if value is None:
        return ""
    if isinstance(value, int):
        return iso_utc_ms(value)
    return iso_utc(value)


def duration_ms(value: float | int | None) -> str:
    """Milliseconds as a short human duration ('' for None)."""
    if value is None:
        return ""
    ms = float(value)
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def as_json(value: Any, limit: int = MAX_JSON_CHARS) -> str:
    """A value as indented JSON, cut at ``limit`` characters (autoescaped by the
    template like any text)."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
                            default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit} more characters not shown)"
    return text


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("flowmonkey.api.ui", "templates"),
        # every template, whatever its name: user data is never trusted as markup
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["ms"] = duration_ms
    env.filters["json"] = as_json
    env.globals["nav"] = NAV
    return env


ENV = _environment()


def section_of(path: str) -> str:
    """The nav entry a path belongs to ('' for none)."""
    for label, prefix in NAV:
        if path == prefix or path.startswith(prefix + "/"):
            return label
    return ""


def render(request: Request, template: str, context: Mapping[str, Any],
           session: UiSession | None) -> str:
    tenant = request.query_params.get("tenant", "")
    common: dict[str, Any] = {
        "request": request, "session": session,
        "csrf": session.csrf if session is not None else "",
        "section": section_of(request.url.path),
        "tenant": tenant if session is not None and session.admin else "",
        "auth_on": sessions_of(request).auth is not None,
    }
    common.update(context)
    return ENV.get_template(template).render(common)


def _respond(request: Request, body: str, status: int,
             headers: Mapping[str, str] | None) -> HTMLResponse:
    response = HTMLResponse(body, status_code=status,
                            headers={**SECURITY_HEADERS, **(headers or {})})
    new: UiSession | None = getattr(request.state, "ui_new_session", None)
    if new is not None:  # a session made for this request (no auth): keep it
        sessions_of(request).set_cookie(request, response, new)
    return response


def page(request: Request, template: str, session: UiSession | None, *,
         status: int = 200, headers: Mapping[str, str] | None = None,
         **context: Any) -> HTMLResponse:
    """A whole page: ``template`` extends ``base.html``."""
    return _respond(request, render(request, template, context, session), status, headers)


def partial(request: Request, template: str, session: UiSession | None, *,
            status: int = 200, headers: Mapping[str, str] | None = None,
            **context: Any) -> HTMLResponse:
    """A fragment for htmx (``template`` does not extend ``base.html``)."""
    return _respond(request, render(request, template, context, session), status, headers)


def error_page(request: Request, error: UiError) -> HTMLResponse:
    """An error as a page (a fragment for htmx, which shows it where the answer goes)."""
    sessions = sessions_of(request)
    session = sessions.loads(request.cookies.get(COOKIE))
    template = "error_partial.html" if request.headers.get("HX-Request") else "error.html"
    headers = {}
    if request.headers.get("HX-Request"):
        # htmx swaps only 2xx answers by default: retarget to the page's error slot
        headers = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
    return _respond(request, render(request, template, {"error": error}, session),
                    error.status, headers)
