"""Flow, step, table and execution models (pydantic v2; camelCase JSON accepted)."""

from flowmonkey.model.execution import (
    Cancellation,
    Execution,
    ExecutionError,
    ExecutionStatus,
    HistoryEntry,
)
from flowmonkey.model.flow import Flow, RetryConfig, Step, Transitions, VisualMetadata
from flowmonkey.model.job import JobRecord, JobStatus, JobSummary
from flowmonkey.model.limits import ContextLimits, TimeoutConfig
from flowmonkey.model.result import ChildSpec, HandlerEvent, Result, StepError, StepResult
from flowmonkey.model.selectors import (
    FullSelector,
    InputSelector,
    KeySelector,
    KeysSelector,
    PathSelector,
    StaticSelector,
    TemplateSelector,
)
from flowmonkey.model.tables import ColumnDef, PipeDef, PipeMapping, TableDef

__all__ = [
    "Cancellation",
    "ChildSpec",
    "ColumnDef",
    "ContextLimits",
    "Execution",
    "ExecutionError",
    "ExecutionStatus",
    "Flow",
    "FullSelector",
    "HandlerEvent",
    "HistoryEntry",
    "InputSelector",
    "JobRecord",
    "JobStatus",
    "JobSummary",
    "KeySelector",
    "KeysSelector",
    "PathSelector",
    "PipeDef",
    "PipeMapping",
    "Result",
    "RetryConfig",
    "StaticSelector",
    "Step",
    "StepError",
    "StepResult",
    "TableDef",
    "TemplateSelector",
    "TimeoutConfig",
    "Transitions",
    "VisualMetadata",
]
