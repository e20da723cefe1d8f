"""``GET /metrics`` and the request metrics of the HTTP API.

``/metrics`` needs no API key, like ``/health``: Prometheus scrapers rarely carry
one, and what it serves reveals nothing a key protects. Every label is a command
type, a reject code, a handler outcome, a partition number, a route *template*
(``/v1/executions/{execution_id}``, never the path with its id) or a status code;
no execution, tenant or flow id, and no token, is ever a label. Operators who do not
want the numbers public put the route behind their proxy like any internal port.

Requests are counted by :class:`RequestMetrics`, an ASGI middleware that reads the
matched route's template after routing; a request no route matched (a 404, a body
refused before routing) counts under the route ``unmatched``. Every label value comes
from a fixed set, whatever a client sends: a method outside the standard ones counts
as ``other`` (anyone can send ``FOO /``, and each new value would be a new series
kept for the life of the process), and a status outside 100-599 as ``other``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowmonkey.api.deps import EngineDep
from flowmonkey.metrics import CONTENT_TYPE_LATEST, Metrics

router = APIRouter(tags=["health"])

UNMATCHED = "unmatched"
OTHER = "other"
#: the methods counted under their own name (RFC 9110 and PATCH); any other is OTHER
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                     "CONNECT"})


def method_label(method: object) -> str:
    """The method as a label: one of :data:`METHODS` (methods are case-sensitive, so
    ``get`` is not ``GET``), else ``other``."""
    return method if isinstance(method, str) and method in METHODS else OTHER


def route_label(route: object) -> str:
    """The matched route's template (the app's routes are a fixed set), else
    ``unmatched``: never the path a client sent."""
    template = getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else OTHER


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
        # the labelled children, looked up once per label set: ``labels()`` costs more
        # than counting (the label values come from fixed sets, so this stays small)
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

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
            # the router sets "route" in this very scope
            template = route_label(scope.get("route"))
            method = method_label(scope.get("method"))
            counted = (method, template, status_label(status))
            counter = self._counters.get(counted)
            if counter is None:
                counter = self._counters[counted] = self.metrics.api_requests.labels(*counted)
            counter.inc()
            timer = self._timers.get(counted[:2])
            if timer is None:
                timer = self._timers[counted[:2]] = \
                    self.metrics.api_request_seconds.labels(method, template)
            timer.observe(time.perf_counter() - started)
