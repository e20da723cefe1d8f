"""Handlers: the contracts (:mod:`.base`) and the built-in step types.

:func:`builtin` returns the handlers every engine registers by default (unless
``Engine(builtin_handlers=False)``); a handler of the caller's with the same type
replaces the built-in one (:func:`with_builtins`). ``sub-flow`` is not among them: it
needs the engine's flow registry, so the engine registers a :class:`SubFlowHandler`
itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from flowmonkey.handlers.base import (
    ContextHelpers,
    DictVaultProvider,
    EnvVaultProvider,
    FunctionHandler,
    Handler,
    HandlerMetadata,
    HandlerParams,
    StepHandler,
    VaultProvider,
    handler,
)
from flowmonkey.handlers.batch import BatchProcessHandler
from flowmonkey.handlers.delay import DelayHandler
from flowmonkey.handlers.expressions import Expression, ExpressionError, evaluate
from flowmonkey.handlers.http import HttpHandler
from flowmonkey.handlers.routing import ConditionalHandler, SwitchHandler
from flowmonkey.handlers.subflow import SubFlowHandler
from flowmonkey.handlers.transform import TransformHandler


def builtin(*, allow_private_http: bool = False) -> list[StepHandler]:
    """Fresh instances of the built-in handlers (all but ``sub-flow``).

    ``allow_private_http`` lets the ``http`` handler call private and loopback
    addresses; it is an operator decision, never a flow's.
    """
    return [
        HttpHandler(allow_private=allow_private_http),
        DelayHandler(),
        TransformHandler(),
        ConditionalHandler(),
        SwitchHandler(),
        BatchProcessHandler(),
    ]


def with_builtins(handlers: Iterable[StepHandler], *,
                  allow_private_http: bool = False) -> list[StepHandler]:
    """``handlers`` plus the built-ins whose types none of them has (a handler of
    the caller's replaces the built-in of its type; ``handlers`` are kept as given)."""
    mine = list(handlers)
    types = {h.metadata.type for h in mine}
    return [h for h in builtin(allow_private_http=allow_private_http)
            if h.metadata.type not in types] + mine


__all__ = [
    "BatchProcessHandler",
    "ConditionalHandler",
    "ContextHelpers",
    "DelayHandler",
    "DictVaultProvider",
    "EnvVaultProvider",
    "Expression",
    "ExpressionError",
    "FunctionHandler",
    "Handler",
    "HandlerMetadata",
    "HandlerParams",
    "HttpHandler",
    "StepHandler",
    "SubFlowHandler",
    "SwitchHandler",
    "TransformHandler",
    "VaultProvider",
    "builtin",
    "evaluate",
    "handler",
    "with_builtins",
]
