"""The explorer's errors as HTML pages (the API's stay JSON).

A page raises :class:`UiError` (or :class:`LoginRequired`); engine errors met by a page
are shown with the API's code and message (:func:`from_engine_error`, the same mapping
as ``api/errors.py``). Under ``/ui`` an unknown path or method is an HTML page too.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowmonkey.api.errors import _TOLD_AS_IS, ApiError, status_of
from flowmonkey.errors import FlowMonkeyError

log = logging.getLogger("flowmonkey.api")

UI_PREFIX = "/ui"


class UiError(Exception):
    """An error page: status, a short title, a message, and the API's code if any."""

    def __init__(self, status: int, title: str, message: str, *, code: str | None = None,
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.code = code


class LoginRequired(Exception):
    """No valid session: off to the login page."""


def not_found(what: str = "page") -> UiError:
    """The one 404 of the explorer: the same for a missing id and another tenant's."""
    return UiError(404, "Not found", f"no such {what} (or not yours to see)",
                   code="NOT_FOUND")


def from_engine_error(request: Request, error: FlowMonkeyError) -> UiError:
    """The API's answer to ``error`` (its status, code and message) as an error page."""
    status = status_of(error)
    if status < 500 or error.code in _TOLD_AS_IS:
        return UiError(status, "Refused", error.message, code=error.code)
    log.error("%s %s failed: %s", request.method, request.url.path, error)
    if status == 503:
        return UiError(503, "Unavailable", "the event log or the database is unavailable; "
                       "try again later", code=error.code)
    return UiError(500, "Failed", "the request failed; the server log has the details",
                   code="INTERNAL_ERROR")


def from_api_error(error: ApiError) -> UiError:
    return UiError(error.status, "Refused", error.message, code=error.code)


def is_ui(request: Request) -> bool:
    path = request.url.path
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


Handler = Callable[[Request, Exception], Awaitable[Response]]


def install(app: FastAPI) -> None:
    """Error pages for ``/ui`` paths; other paths keep the API's JSON handlers."""
    from flowmonkey.api.ui.render import error_page

    async def ui_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UiError)
        return error_page(request, exc)

    async def login_required(request: Request, exc: Exception) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        where = f"{UI_PREFIX}/login?next={quote(target, safe='')}"
        if request.headers.get("HX-Request"):
            # htmx would swap the login page into a partial: send the whole page there
            return Response(status_code=204, headers={"HX-Redirect": where})
        return RedirectResponse(where, status_code=303)

    def delegating(exc_type: type[Exception], ui: Handler) -> None:
        previous = app.exception_handlers.get(exc_type)

        async def handler(request: Request, exc: Exception) -> Response:
            if is_ui(request) or previous is None:
                return await ui(request, exc)
            answer = previous(request, exc)
            # Starlette types handlers as maybe-sync; the app's (api/errors.py) are async
            return await answer if inspect.isawaitable(answer) else answer

        app.add_exception_handler(exc_type, handler)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return error_page(request, UiError(exc.status_code, title, str(exc.detail)))

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_page(request, from_api_error(exc))

    async def engine_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FlowMonkeyError)
        return error_page(request, from_engine_error(request, exc))

    app.add_exception_handler(UiError, ui_error)
    app.add_exception_handler(LoginRequired, login_required)
    delegating(StarletteHTTPException, http_error)
    delegating(ApiError, api_error)
    delegating(FlowMonkeyError, engine_error)
