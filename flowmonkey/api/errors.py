"""Errors as JSON: ``{"error": {"code": ..., "message": ...}}``.

The engine's error codes map to HTTP statuses here, in one table; a command the kernel
refused with another code is a 422, any other engine error a 500. A 5xx never carries
the engine's message (it may quote hosts or a driver's text), except a 504's. Request
validation errors are a 422 that names each field by its JSON (camelCase) path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowmonkey.errors import CommandRejected, FlowMonkeyError
from flowmonkey.kernel import limits as lim
from flowmonkey.model.storable import UNSTORABLE, printable

log = logging.getLogger("flowmonkey.api")

STATUS_OF_CODE: dict[str, int] = {
    "EXECUTION_NOT_FOUND": 404,
    "FLOW_NOT_FOUND": 404,
    "TABLE_NOT_FOUND": 404,
    "TRIGGER_NOT_FOUND": 404,
    "INVALID_TOKEN": 400,
    "INVALID_CURSOR": 400,
    "TOKEN_USED": 409,
    "TOKEN_EXPIRED": 409,
    "TOKEN_REVOKED": 409,
    "NOT_WAITING": 409,
    "NOT_CANCELLABLE": 409,
    "EXECUTION_EXISTS": 409,
    "FLOW_NOT_PUBLISHED": 409,
    "IDEMPOTENCY_KEY_CONFLICT": 409,
    "TRIGGER_DISABLED": 409,
    "INVALID_COMMAND": 422,
    "VALIDATION_ERROR": 422,
    "FLOW_INVALID": 422,
    "TABLE_ERROR": 422,
    "TRIGGER_INVALID": 422,
    "MAPPING_ERROR": 422,
    # a context or resume data over the engine's limits (the kernel's LimitViolation)
    **dict.fromkeys((lim.CONTEXT_VALUE_TOO_LARGE, lim.CONTEXT_SIZE_LIMIT,
                     lim.CONTEXT_KEY_LIMIT, lim.CONTEXT_NESTING_LIMIT, lim.INVALID_VALUE),
                    422),
    # the engine failed on the command itself (its log has the traceback): not the
    # client's doing, and the command changed nothing
    "INTERNAL_ERROR": 500,
    # the processors did not answer in time: the command may still be processed
    "WAIT_TIMEOUT": 504,
    # the log or the database cannot be used right now: try again later
    "LOG_ERROR": 503,
    "PROJECTION_STORE_ERROR": 503,
    "PROJECTION_NOT_STARTED": 503,
}
#: 5xx answers whose message is the client's to read (it names no host or driver)
_TOLD_AS_IS = frozenset({"WAIT_TIMEOUT"})


class ApiError(Exception):
    """An error answer with its status, code and message (and optional headers)."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def not_found(what: str, identifier: str) -> ApiError:
    code = f"{what.upper()}_NOT_FOUND"
    return ApiError(404, code, f"{what} {identifier!r} not found")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def status_of(error: FlowMonkeyError) -> int:
    """The table's status; else 422 for a command the kernel refused as given, and 500
    for anything else (an engine failure, not the client's doing)."""
    status = STATUS_OF_CODE.get(error.code)
    if status is not None:
        return status
    return 422 if isinstance(error, CommandRejected) else 500


def _json_path(loc: Sequence[Any]) -> str:
    # a key may hold a lone surrogate, which no JSON answer can carry: escaped
    parts = [printable(str(p)) for p in loc if p not in ("body", "query", "path", "header")]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "(body)"


def validation_problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    problems = []
    for error in exc.errors():
        loc = error.get("loc", ())
        where = loc[0] if loc else "body"
        if error.get("type") == "json_invalid":
            # its loc is ("body", <character offset>): not a field
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            problems.append({"in": "body", "field": "(body)",
                             "message": f"not valid JSON{at}"})
            continue
        ctx = error.get("ctx") or {}
        if error.get("type") == UNSTORABLE and isinstance(ctx.get("field"), str):
            # a value deep in a field: the checker named its path itself
            problems.append({"in": where, "field": ctx["field"],
                             "message": printable(str(error.get("msg", "invalid")), None)})
            continue
        problems.append({"in": where, "field": _json_path(loc),
                         "message": printable(str(error.get("msg", "invalid")), None)})
    return problems


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status,
                            headers=exc.headers or None)

    async def engine_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FlowMonkeyError)
        status = status_of(exc)
        if status < 500 or exc.code in _TOLD_AS_IS:
            return JSONResponse(error_body(exc.code, exc.message), status_code=status)
        # a log's or database's message may quote hosts, topics or a driver's text
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
        code = exc.code if status == 503 else "INTERNAL_ERROR"
        message = ("the event log or the database is unavailable; try again later"
                   if status == 503 else "the request failed; the server log has the details")
        return JSONResponse(error_body(code, message), status_code=status)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = validation_problems(exc)
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse(error_body("VALIDATION_ERROR", f"invalid request: {summary}",
                                       problems), status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            # FastAPI's answer to a body nested past what the JSON reader reads: as
            # much a body too deep as one the request models refuse
            message = "(body): nests deeper than a body may"
            return JSONResponse(error_body("VALIDATION_ERROR", f"invalid request: {message}",
                                           [{"in": "body", "field": "(body)",
                                             "message": "nests deeper than a body may"}]),
                                status_code=422)
        code = {400: "INVALID_BODY", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                413: "BODY_TOO_LARGE"}.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the message may quote internals (a driver's error, a DSN): log it, answer plainly
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(error_body("INTERNAL_ERROR", "the request failed; the server "
                                       "log has the details"), status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(FlowMonkeyError, engine_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
