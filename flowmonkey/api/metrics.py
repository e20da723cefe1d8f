"""``GET /metrics`` and the request metrics of the HTTP API.

``/metrics`` needs no API key, like ``/health``: Prometheus scrapers rarely carry
one, and what it serves reveals nothing a key protects. Every label is a command
type, a reject code, a handler outcome, a partition number, a route *template*
(``/v1/executions/{execution_id}``, never the path with its id) or a status code;
no execution, tenant or flow id, and no token, is ever a label. Operators who do not
want the numbers public put the route behind their proxy like any internal port.

Requests are counted by :class:`RequestMetrics`, an ASGI middleware that reads the
matched route's template after routing; a request no route matched (a 404, a body
refused before routing) counts under the route ``unmatched``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowmonkey.api.deps import EngineDep
from flowmonkey.metrics import CONTENT_TYPE_LATEST, Metrics

router = APIRouter(tags=["health"])

UNMATCHED = "unmatched"


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text format"}})
async def metrics(engine: EngineDep) -> Response:
    """The engine's metrics in Prometheus' text format (no API key needed)."""
    return Response(engine.metrics.render(), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts requests by method, route template and status, and times them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless the app answers: an exception escaping it is a 500
        started = time.perf_counter()

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = scope.get("route")
            # the router sets it in this very scope; the template, never the raw path
            template = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.api_requests.labels(method, template, str(status)).inc()
            self.metrics.api_request_seconds.labels(method, template).observe(
                time.perf_counter() - started)
