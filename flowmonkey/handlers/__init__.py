"""Handlers: the contracts (:mod:`.base`) and the built-in step types.

:func:`builtin` returns the handlers every engine registers by default (unless
``Engine(builtin_handlers=False)``); a handler of the caller's with the same type
replaces the built-in one (:func:`with_builtins`). ``sub-flow`` is not among them: it
needs the engine's flow registry, so the engine registers a :class:`SubFlowHandler`
itself.

The names are loaded on first use (PEP 562), so importing a module of this package
(e.g. :mod:`.base`) does not load the ``http`` handler's ``httpx``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from flowmonkey.handlers.email_reply import EmailReplyHandler
    from flowmonkey.handlers.expressions import Expression, ExpressionError, evaluate
    from flowmonkey.handlers.form_submit import FormSubmitHandler
    from flowmonkey.handlers.http import HttpHandler
    from flowmonkey.handlers.routing import ConditionalHandler, SwitchHandler
    from flowmonkey.handlers.subflow import SubFlowHandler
    from flowmonkey.handlers.transform import TransformHandler

_WHERE = {
    "ContextHelpers": "base",
    "DictVaultProvider": "base",
    "EnvVaultProvider": "base",
    "FunctionHandler": "base",
    "Handler": "base",
    "HandlerMetadata": "base",
    "HandlerParams": "base",
    "StepHandler": "base",
    "VaultProvider": "base",
    "handler": "base",
    "BatchProcessHandler": "batch",
    "DelayHandler": "delay",
    "EmailReplyHandler": "email_reply",
    "Expression": "expressions",
    "ExpressionError": "expressions",
    "evaluate": "expressions",
    "FormSubmitHandler": "form_submit",
    "HttpHandler": "http",
    "ConditionalHandler": "routing",
    "SwitchHandler": "routing",
    "SubFlowHandler": "subflow",
    "TransformHandler": "transform",
}


def builtin(*, allow_private_http: bool = False) -> list[StepHandler]:
    """Fresh instances of the built-in handlers (all but ``sub-flow``).

    ``allow_private_http`` lets the ``http`` handler call private and loopback
    addresses; it is an operator decision, never a flow's.
    """
    from flowmonkey.handlers.batch import BatchProcessHandler
    from flowmonkey.handlers.delay import DelayHandler
    from flowmonkey.handlers.email_reply import EmailReplyHandler
    from flowmonkey.handlers.form_submit import FormSubmitHandler
    from flowmonkey.handlers.http import HttpHandler
    from flowmonkey.handlers.routing import ConditionalHandler, SwitchHandler
    from flowmonkey.handlers.transform import TransformHandler

    return [
        HttpHandler(allow_private=allow_private_http),
        DelayHandler(),
        TransformHandler(),
        ConditionalHandler(),
        SwitchHandler(),
        BatchProcessHandler(),
        FormSubmitHandler(),
        EmailReplyHandler(),
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
    "EmailReplyHandler",
    "EnvVaultProvider",
    "Expression",
    "ExpressionError",
    "FormSubmitHandler",
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


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
