"""Limits and timeouts configured per engine or per execution (FEATURES A7, B5)."""

from __future__ import annotations

from pydantic import Field

from flowmonkey.model.base import FrozenModel

DEFAULT_MAX_SIZE_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_KEYS = 1000
DEFAULT_MAX_TOTAL_SIZE_BYTES = 10 * 1024 * 1024
MAX_NESTING_LIMIT = 128
"""The highest ``ContextLimits.max_depth`` a new execution may have (the log's JSON
encoder stops at 254 levels of nesting, and a value is written a few levels down in its
event). Checked on start commands and by ``EngineOptions``, not by the model, so events
written with a higher one still replay."""
DEFAULT_MAX_SUBFLOW_DEPTH = 32
"""Levels of sub-flow children below an execution started by a caller (its child is
at depth 1): a child that would be deeper fails its step with SUBFLOW_DEPTH_EXCEEDED."""
DEFAULT_MAX_CHILDREN = 1000
"""Children one execution may start in its life: one more fails the step with
CHILDREN_LIMIT_EXCEEDED."""


class ContextLimits(FrozenModel):
    """Bounds on an execution's context, checked on every write.

    ``max_size_bytes`` bounds one written value (as JSON), ``max_total_size_bytes`` the
    whole context, ``max_keys`` its top-level keys and ``max_depth`` a value's nesting.
    """

    max_size_bytes: int = Field(default=DEFAULT_MAX_SIZE_BYTES, gt=0)
    max_total_size_bytes: int = Field(default=DEFAULT_MAX_TOTAL_SIZE_BYTES, gt=0)
    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, gt=0)
    max_keys: int = Field(default=DEFAULT_MAX_KEYS, gt=0)


class TimeoutConfig(FrozenModel):
    """Execution-level timeouts; each ends the execution by cancellation (source ``timeout``)."""

    execution_timeout_ms: int | None = Field(default=None, gt=0)
    wait_timeout_ms: int | None = Field(default=None, gt=0)
