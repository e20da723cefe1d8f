"""ExecutionState <-> JSON, so a database projection can store the applier's state and
load it back to fold the next events onto it (the processors' snapshots store each
execution in the same form). Pure: no I/O, like the rest of the kernel.

The JSON is a stored format: ``FORMAT`` is written with it, and a change to its shape
needs a new format number and a reader for the old one.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from flowmonkey.kernel.job_state import job_from_json, job_to_json
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
_CONVERTED = frozenset({"status", "options", "tokens", "timeout", "history", "job"})


def state_to_json(state: ExecutionState) -> dict[str, Any]:
    """A JSON-ready dict holding every field of ``state``."""
    out: dict[str, Any] = {"format": FORMAT}
    out.update(zip(_PLAIN, _plain_values(state), strict=True))
    out["status"] = state.status.value
    out["options"] = _options_json(state.options)
    out["tokens"] = {key: {"token": t.token, "status": t.status, "created_at": t.created_at,
                           "expires_at": t.expires_at} for key, t in state.tokens.items()}
    out["timeout"] = state.timeout.model_dump() if state.timeout is not None else None
    out["history"] = list(state.history)
    out["job"] = job_to_json(state.job)
    return out


_PLAIN = tuple(name for name in _FIELDS if name not in _CONVERTED)
_plain_values = attrgetter(*_PLAIN)
# options objects are shared by the executions of an engine (kernel.apply._options):
# their JSON is built once each (keyed by id, holding the object so the id stays its)
_OPTIONS_JSON: dict[int, tuple[ExecutionOptions, dict[str, Any]]] = {}


def _options_json(opts: ExecutionOptions) -> dict[str, Any]:
    found = _OPTIONS_JSON.get(id(opts))
    if found is None or found[0] is not opts:
        found = (opts, {"record_history": opts.record_history, "max_steps": opts.max_steps,
                        "limits": opts.limits.model_dump(),
                        "max_subflow_depth": opts.max_subflow_depth,
                        "max_children": opts.max_children})
        if len(_OPTIONS_JSON) >= 1024:
            _OPTIONS_JSON.clear()
        _OPTIONS_JSON[id(opts)] = found
    # a copy: the caller owns what it is given
    return {**found[1], "limits": dict(found[1]["limits"])}


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
    values["job"] = job_from_json(raw.get("job"))
    return ExecutionState(**values)
