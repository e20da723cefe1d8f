"""ExecutionState <-> JSON, so a database projection can store the applier's state and
load it back to fold the next events onto it (the processors' snapshots store each
execution in the same form). Pure: no I/O, like the rest of the kernel.

The JSON is a stored format: ``FORMAT`` is written with it, and a change to its shape
needs a new format number and a reader for the old one.
"""

from __future__ import annotations

from typing import Any

from flowmonkey.kernel.state import ExecutionOptions, ExecutionState, TokenState
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.limits import (
    DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_SUBFLOW_DEPTH,
    ContextLimits,
    TimeoutConfig,
)

FORMAT = 1

_FIELDS = tuple(ExecutionState.__slots__)
_CONVERTED = frozenset({"status", "options", "tokens", "timeout", "history"})


def state_to_json(state: ExecutionState) -> dict[str, Any]:
    """A JSON-ready dict holding every field of ``state``."""
    out: dict[str, Any] = {"format": FORMAT}
    for name in _FIELDS:
        if name not in _CONVERTED:
            out[name] = getattr(state, name)
    opts = state.options
    out["status"] = state.status.value
    out["options"] = {"record_history": opts.record_history, "max_steps": opts.max_steps,
                      "limits": opts.limits.model_dump(),
                      "max_subflow_depth": opts.max_subflow_depth,
                      "max_children": opts.max_children}
    out["tokens"] = {key: {"token": t.token, "status": t.status, "created_at": t.created_at,
                           "expires_at": t.expires_at} for key, t in state.tokens.items()}
    out["timeout"] = state.timeout.model_dump() if state.timeout is not None else None
    out["history"] = list(state.history)
    return out


def state_from_json(raw: dict[str, Any]) -> ExecutionState:
    """The state :func:`state_to_json` wrote; fields it lacks take their defaults."""
    fmt = raw.get("format", FORMAT)
    if fmt != FORMAT:
        raise ValueError(f"unknown execution state format {fmt!r} (this version reads "
                         f"{FORMAT})")
    values = {k: v for k, v in raw.items() if k in _FIELDS and k not in _CONVERTED}
    opts = raw.get("options") or {}
    limits = opts.get("limits")
    values["options"] = ExecutionOptions(
        record_history=bool(opts.get("record_history", False)),
        max_steps=int(opts.get("max_steps", 1000)),
        limits=ContextLimits(**limits) if limits else ContextLimits(),
        max_subflow_depth=int(opts.get("max_subflow_depth", DEFAULT_MAX_SUBFLOW_DEPTH)),
        max_children=int(opts.get("max_children", DEFAULT_MAX_CHILDREN)),
    )
    if "status" in raw:
        values["status"] = ExecutionStatus(raw["status"])
    values["tokens"] = {key: TokenState(t["token"], t["status"], t["created_at"],
                                        t.get("expires_at"))
                        for key, t in (raw.get("tokens") or {}).items()}
    timeout = raw.get("timeout")
    values["timeout"] = TimeoutConfig(**timeout) if timeout is not None else None
    values["history"] = tuple(raw.get("history") or ())
    return ExecutionState(**values)
