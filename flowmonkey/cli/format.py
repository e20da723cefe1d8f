"""Formatting events and executions for people (timelines, one-line details)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.events.envelope import Event
    from flowmonkey.model.execution import Execution


def short(value: Any, limit: int = 70) -> str:
    """Compact one-line JSON, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False, sort_keys=False)


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value / 1000:g} s" if value >= 1000 else f"{int(value)} ms"


def event_detail(event: Event) -> str:
    """A short human description of an event's payload."""
    d = event.data
    t = event.type
    if t == "execution.created":
        parts = [f"{d.get('flow_id')}@{d.get('flow_version')}"]
        if event.tenant_id:
            parts.append(f"tenant={event.tenant_id}")
        if d.get("parent_execution_id"):
            parts.append(f"parent={str(d['parent_execution_id'])[:8]}")
        return " ".join(parts)
    if t == "execution.started":
        return f"at {d.get('step_id')}"
    if t == "step.started":
        attempt = d.get("attempt", 1)
        return f"{d.get('step_type')}" + (f" (attempt {attempt})" if attempt != 1 else "")
    if t == "step.completed":
        took = f" {d.get('duration_ms', 0)}ms"
        if d.get("outcome") == "failure":
            err = d.get("error") or {}
            return f"failure{took} {err.get('code')}: {short(err.get('message'), 50)}"
        target = f" -> {d['output_key']}" if d.get("output_key") else ""
        return f"{d.get('outcome')}{took}{target} {short(d.get('output'), 50)}"
    if t == "step.retry":
        err = d.get("error") or {}
        return (f"retry {d.get('attempt')}/{d.get('max_attempts')} in "
                f"{_ms(d.get('backoff_ms'))} after {err.get('code')}")
    if t == "step.timeout":
        return f"timed out after {_ms(d.get('timeout_ms'))}"
    if t == "transition":
        return f"{d.get('from_step_id')} -> {d.get('to_step_id')} ({d.get('outcome')})"
    if t == "execution.waiting":
        kind = d.get("kind", "")
        wake = d.get("wake_at")
        parts = [str(kind)]
        if isinstance(wake, int):
            parts.append(f"for {_ms(wake - event.timestamp_ms)}")
        if d.get("reason"):
            parts.append(f"({d['reason']})")
        return " ".join(parts)
    if t == "execution.resumed":
        if "data" in d:
            return f"resumed with {short(d.get('data'), 50)}"
        return f"{d.get('reason', 'resumed')}"
    if t in ("token.created", "token.used", "token.revoked"):
        token = str(d.get("token", ""))
        extra = f" ({d['reason']})" if d.get("reason") else ""
        return f"token {token[:8]}…{extra}"
    if t == "execution.completed":
        return f"after {d.get('total_steps')} steps"
    if t == "execution.failed":
        return f"{d.get('code')}: {short(d.get('message'), 60)}"
    if t in ("execution.cancelling", "execution.cancelled"):
        reason = f": {d['reason']}" if d.get("reason") else ""
        return f"by {d.get('source')}{reason}"
    if t == "child.started":
        mode = "waiting" if d.get("wait", True) else "fire-and-forget"
        return f"{d.get('flow_id')} as {str(d.get('child_execution_id'))[:8]} ({mode})"
    if t == "child.finished":
        return f"{str(d.get('child_execution_id'))[:8]} {d.get('status')}"
    if t == "pipe.row":
        return f"{d.get('pipe_id')} -> {d.get('table_id')} {short(d.get('row'), 45)}"
    if t == "idempotency.hit":
        return short(d, 60)
    if t in ("pipe.inserted", "pipe.failed", "wal.appended"):
        err = d.get("error") or {}
        tail = f" {err.get('message')}" if err else ""
        return f"{d.get('pipeId', '')} -> {d.get('tableId', '')}{tail}"
    return short(d, 60)


def event_step(event: Event) -> str:
    d = event.data
    step = d.get("step_id") or d.get("stepId") or d.get("from_step_id")
    return str(step) if step else "-"


def execution_tree(root_id: str, events: Iterable[Event]) -> set[str]:
    """The root execution and every descendant named by ``child.started`` events."""
    ids = {root_id}
    for event in events:
        if event.type == "child.started" and event.execution_id in ids:
            ids.add(str(event.data.get("child_execution_id")))
    return ids


def timeline_events(root_id: str, events: Sequence[Event]) -> list[Event]:
    """The execution's (and its children's) events, without registry noise."""
    ids = execution_tree(root_id, events)
    picked = [e for e in events if e.execution_id in ids
              and (e.seq > 0 or e.type.startswith(("pipe.", "wal.", "command.")))]
    # Store events (pipe.inserted, wal.appended …) reach the dispatcher while the
    # projection applies a batch, i.e. before the batch's own events: put each after
    # the pipe.row that caused it.
    ordered: list[Event] = []
    deferred: list[Event] = []
    for event in picked:
        if event.seq == 0 and event.type.startswith(("pipe.", "wal.")):
            deferred.append(event)
            continue
        ordered.append(event)
        if event.type == "pipe.row":
            pipe_id = event.data.get("pipe_id")
            mine = [d for d in deferred if d.data.get("pipeId") == pipe_id
                    and d.execution_id == event.execution_id]
            ordered.extend(mine)
            deferred = [d for d in deferred if d not in mine]
    return ordered + deferred


def format_timeline(root_id: str, events: Sequence[Event]) -> list[str]:
    """One line per event: relative time, seq, type, step, detail."""
    if not events:
        return ["  (no events)"]
    t0 = events[0].timestamp_ms
    several = len({e.execution_id for e in events}) > 1
    lines = [f"  {'time':>9}  {'seq':>3}  " + ("exec      " if several else "")
             + f"{'event':<20} {'step':<16} detail"]
    for event in events:
        rel = (event.timestamp_ms - t0) / 1000
        seq = str(event.seq) if event.seq else "-"
        who = f"{event.execution_id[:8]}  " if several else ""
        lines.append(f"  {rel:>+8.3f}s  {seq:>3}  {who}{event.type:<20} "
                     f"{event_step(event):<16} {event_detail(event)}")
    return lines


def clock_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]


def error_text(execution: Execution) -> str:
    if execution.error is None:
        return "none"
    err = execution.error
    named = err.step_id is None or err.message.startswith(f"step {err.step_id!r}")
    where = "" if named else f" (step {err.step_id!r})"
    return f"{err.code}: {err.message}{where}"


def event_json(event: Event, t0: int) -> dict[str, Any]:
    return {"seq": event.seq, "type": event.type, "executionId": event.execution_id,
            "tenantId": event.tenant_id,
            "stepId": event_step(event) if event_step(event) != "-" else None,
            "timestampMs": event.timestamp_ms, "relativeMs": event.timestamp_ms - t0,
            "data": event.data}
