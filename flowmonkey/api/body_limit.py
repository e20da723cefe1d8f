"""A bound on request bodies, answered as a JSON 413 like every other error.

A route with a smaller bound of its own (a webhook's, an inbound email's, a form
submission's) reads its raw body with :func:`read_body`.

FastAPI's own ``max_body_size`` answers a too-long ``Content-Length`` in plain text
(replacing whatever the app answered), so this small ASGI middleware does it instead:
a declared length over the bound is refused before anything is read, and a body that
grows past it while streaming stops the read.

It also sets the nesting limit of body values for the request (the serving engine's
``ContextLimits.max_depth``, see :mod:`flowmonkey.model.storable`): request models
are validated by FastAPI, which gives them no other way to know the engine.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowmonkey.api.errors import ApiError, error_body
from flowmonkey.model.limits import DEFAULT_MAX_DEPTH
from flowmonkey.model.storable import body_max_depth

CODE = "BODY_TOO_LARGE"


def too_large_message(max_bytes: int) -> str:
    return f"the request body is over {max_bytes} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(error_body(CODE, too_large_message(self.max_bytes)),
                                    status_code=413)
            await response(scope, receive, send)
            return
        read = 0

        async def bounded() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body; the
                    # app's handler answers it (see errors.install_error_handlers)
                    raise HTTPException(413, too_large_message(self.max_bytes))
            return message

        # the app validates the body in this task, so in this context
        depth = body_max_depth.set(self.max_depth)
        try:
            await self.app(scope, bounded, send)
        finally:
            body_max_depth.reset(depth)


def _content_length(scope: Scope) -> str:
    """The ``Content-Length`` header ("" without one), read from the scope's raw
    headers (names arrive lower-cased) without building a ``Headers``."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return str(value.decode("latin-1"))
    return ""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) past ``limit`` bytes: a declared length at once, a
    streamed one as soon as it grows past it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, CODE, too_large_message(limit))
    chunks: list[bytes] = []
    read = 0
    async for chunk in request.stream():
        read += len(chunk)
        if read > limit:
            raise ApiError(413, CODE, too_large_message(limit))
        chunks.append(chunk)
    return b"".join(chunks)
