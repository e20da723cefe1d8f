"""What every route depends on: the engine and the caller (:class:`Principal`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flowmonkey.api.auth import Principal
from flowmonkey.engine import Engine


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def principal_of(request: Request) -> Principal:
    principal: Principal = request.app.state.authenticate(request)
    return principal


EngineDep = Annotated[Engine, Depends(engine_of)]
Caller = Annotated[Principal, Depends(principal_of)]
