"""FlowMonkey: an event-sourced workflow engine on a Kafka-style log.

The public names are imported from here (``from flowmonkey import Engine, handler``).
They are loaded on first use (PEP 562): ``import flowmonkey.kernel`` or
``import flowmonkey.model`` does not load the engine, the log backends or their
clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.engine import CancelResult, CreateResult, Engine, EngineOptions
    from flowmonkey.errors import (
        CommandRejected,
        ContextLimitExceeded,
        DecodeError,
        ExecutionNotFoundError,
        FlowMonkeyError,
        FlowNotFoundError,
        FlowValidationError,
        HandlerNotFoundError,
        HandlerTimeout,
        InputValidationError,
        JobCancelledError,
        JobSupersededError,
        LogError,
        RegistrationError,
        ResumeTokenError,
        TableError,
        WaitTimeout,
    )
    from flowmonkey.events.dispatcher import EventDispatcher
    from flowmonkey.events.envelope import Command, Event
    from flowmonkey.handlers.base import (
        ContextHelpers,
        DictVaultProvider,
        EnvVaultProvider,
        Handler,
        HandlerMetadata,
        HandlerParams,
        StepHandler,
        VaultProvider,
        handler,
    )
    from flowmonkey.jobs.worker import Worker
    from flowmonkey.model import (
        Cancellation,
        ColumnDef,
        ContextLimits,
        Execution,
        ExecutionError,
        ExecutionStatus,
        Flow,
        HistoryEntry,
        PipeDef,
        PipeMapping,
        Result,
        RetryConfig,
        Step,
        StepError,
        StepResult,
        TableDef,
        TimeoutConfig,
        Transitions,
    )

_WHERE = {
    "EventDispatcher": "flowmonkey.events.dispatcher",
    "CancelResult": "flowmonkey.engine",
    "CreateResult": "flowmonkey.engine",
    "Engine": "flowmonkey.engine",
    "EngineOptions": "flowmonkey.engine",
    "CommandRejected": "flowmonkey.errors",
    "ContextLimitExceeded": "flowmonkey.errors",
    "DecodeError": "flowmonkey.errors",
    "ExecutionNotFoundError": "flowmonkey.errors",
    "FlowMonkeyError": "flowmonkey.errors",
    "FlowNotFoundError": "flowmonkey.errors",
    "FlowValidationError": "flowmonkey.errors",
    "HandlerNotFoundError": "flowmonkey.errors",
    "HandlerTimeout": "flowmonkey.errors",
    "InputValidationError": "flowmonkey.errors",
    "JobCancelledError": "flowmonkey.errors",
    "JobSupersededError": "flowmonkey.errors",
    "LogError": "flowmonkey.errors",
    "RegistrationError": "flowmonkey.errors",
    "ResumeTokenError": "flowmonkey.errors",
    "TableError": "flowmonkey.errors",
    "WaitTimeout": "flowmonkey.errors",
    "Command": "flowmonkey.events.envelope",
    "Event": "flowmonkey.events.envelope",
    "ContextHelpers": "flowmonkey.handlers.base",
    "DictVaultProvider": "flowmonkey.handlers.base",
    "EnvVaultProvider": "flowmonkey.handlers.base",
    "Handler": "flowmonkey.handlers.base",
    "HandlerMetadata": "flowmonkey.handlers.base",
    "HandlerParams": "flowmonkey.handlers.base",
    "StepHandler": "flowmonkey.handlers.base",
    "VaultProvider": "flowmonkey.handlers.base",
    "handler": "flowmonkey.handlers.base",
    "Cancellation": "flowmonkey.model",
    "ColumnDef": "flowmonkey.model",
    "ContextLimits": "flowmonkey.model",
    "Execution": "flowmonkey.model",
    "ExecutionError": "flowmonkey.model",
    "ExecutionStatus": "flowmonkey.model",
    "Flow": "flowmonkey.model",
    "HistoryEntry": "flowmonkey.model",
    "PipeDef": "flowmonkey.model",
    "PipeMapping": "flowmonkey.model",
    "Result": "flowmonkey.model",
    "RetryConfig": "flowmonkey.model",
    "Step": "flowmonkey.model",
    "StepError": "flowmonkey.model",
    "StepResult": "flowmonkey.model",
    "TableDef": "flowmonkey.model",
    "TimeoutConfig": "flowmonkey.model",
    "Transitions": "flowmonkey.model",
    "Worker": "flowmonkey.jobs.worker",
}

__version__ = "0.1.0"

__all__ = [
    "CancelResult",
    "Cancellation",
    "ColumnDef",
    "Command",
    "CommandRejected",
    "ContextHelpers",
    "ContextLimitExceeded",
    "ContextLimits",
    "CreateResult",
    "DecodeError",
    "DictVaultProvider",
    "Engine",
    "EngineOptions",
    "EnvVaultProvider",
    "Event",
    "EventDispatcher",
    "Execution",
    "ExecutionError",
    "ExecutionNotFoundError",
    "ExecutionStatus",
    "Flow",
    "FlowMonkeyError",
    "FlowNotFoundError",
    "FlowValidationError",
    "Handler",
    "HandlerMetadata",
    "HandlerNotFoundError",
    "HandlerParams",
    "HandlerTimeout",
    "HistoryEntry",
    "InputValidationError",
    "JobCancelledError",
    "JobSupersededError",
    "LogError",
    "PipeDef",
    "PipeMapping",
    "RegistrationError",
    "Result",
    "ResumeTokenError",
    "RetryConfig",
    "Step",
    "StepError",
    "StepHandler",
    "StepResult",
    "TableDef",
    "TableError",
    "TimeoutConfig",
    "Transitions",
    "VaultProvider",
    "WaitTimeout",
    "Worker",
    "__version__",
    "handler",
]


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
