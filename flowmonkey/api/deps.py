"""What every route depends on: the engine and the caller (:class:`Principal`).

The dependencies are ``async def`` though none awaits: FastAPI runs a plain ``def``
dependency in a worker thread, and those hops (four per request) cost more CPU than
the rest of FastAPI's handling of a ``GET`` (docs/performance.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from flowmonkey.api.auth import Principal
from flowmonkey.api.errors import ApiError
from flowmonkey.engine import Engine


async def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def principal_of(request: Request) -> Principal:
    principal: Principal = request.app.state.authenticate(request)
    return principal


async def refuse_nul(request: Request) -> None:
    """Every route's first check: a NUL character in the path or the query is a 400.
    PostgreSQL takes no NUL in a text parameter, so an id holding one would be a 500."""
    # read from the scope: building request.url and parsing the query cost more than
    # the rest of this check. The path is decoded already; a decoded query holds a NUL
    # only where its raw form has one or "%00"
    scope = request.scope
    raw_query: bytes = scope.get("query_string", b"")
    if "\x00" in scope.get("root_path", "") + scope["path"] or b"%00" in raw_query \
            or b"\x00" in raw_query:
        raise ApiError(400, "INVALID_REQUEST", "the path or the query holds a NUL character")


class FlowRefresher:
    """Reads the flows topic again when a request names a flow this engine does not
    know. An engine without processors knows the flows published when it started; a
    flow published since (a processor deployed after the API) is found this way. At
    most once a second, so requests naming unknown flows cannot keep it busy."""

    EVERY_S = 1.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = asyncio.Lock()
        self._last: float | None = None

    async def refresh(self) -> bool:
        """True when the flows were read again (so a lookup is worth repeating)."""
        if self.engine.run_processors:
            return False  # processors here: every flow was given to this engine
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._last is not None and now - self._last < self.EVERY_S:
                return False
            self._last = now
            await self.engine.refresh_flows()
            return True


async def flows_of(request: Request) -> FlowRefresher:
    refresher: FlowRefresher = request.app.state.flow_refresher
    return refresher


EngineDep = Annotated[Engine, Depends(engine_of)]
Flows = Annotated[FlowRefresher, Depends(flows_of)]
Caller = Annotated[Principal, Depends(principal_of)]
