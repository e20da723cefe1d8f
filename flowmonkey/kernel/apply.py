"""Appliers: the only code that changes execution state. One small function per event.

``apply(state, event)`` returns the state after the event. It may update ``state`` in
place (the caller owns it) but never mutates a container held by it; it replaces
them, so clones taken earlier are unaffected. Appliers never validate and never fail
on a valid event: validation is ``decide``'s job.

What an applier keeps from an event (a context, an output, resume data, error details)
it copies (``private_copy``): the event stays the decider's and its readers' (the
embedded log hands the same object to the projection and the listeners), the state
the applier's, and nothing done to one reaches the other.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from sys import intern
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.form_apply import apply_form, is_form_entity
from flowmonkey.kernel.form_state import FormState
from flowmonkey.kernel.job_apply import JOB_APPLIERS
from flowmonkey.kernel.paths import set_path
from flowmonkey.kernel.state import (
    ExecutionOptions,
    ExecutionState,
    PartitionState,
    TokenState,
)
from flowmonkey.kernel.trigger_apply import apply_trigger, is_trigger_entity
from flowmonkey.kernel.trigger_state import TriggerState
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.form import ENTITY_PREFIX as FORM_PREFIX
from flowmonkey.model.limits import (
    DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_SUBFLOW_DEPTH,
    ContextLimits,
    TimeoutConfig,
)
from flowmonkey.model.trigger import ENTITY_PREFIX as TRIGGER_PREFIX

Applier = Callable[[ExecutionState, Event], None]

_ENTITY_PREFIXES = (TRIGGER_PREFIX, FORM_PREFIX)


# Empty containers shared by new states. Safe because appliers never change a
# container in place (they replace it), and it saves three dicts per execution that
# the garbage collector would otherwise walk for as long as the state is kept.
_NO_RETRIES: dict[str, int] = {}
_NO_TOKENS: dict[str, TokenState] = {}
_NO_CHILDREN: dict[str, str] = {}
_NO_ENDED_JOBS: dict[str, str] = {}

_OPTIONS: dict[Any, ExecutionOptions] = {}


def _shared(value: Any) -> Any:
    """``value``, interned when it is text: the names a state keeps (flow, version,
    step, tenant, wait kind and reason) repeat across executions, and a state rebuilt
    from the log would otherwise hold its own copy of each, decoded from each event.
    (Interned strings are freed with their last user, so nothing accumulates.)"""
    return intern(value) if type(value) is str else value


def _new_options(opts: dict[str, Any]) -> ExecutionOptions:
    return ExecutionOptions(
        record_history=bool(opts.get("record_history", False)),
        max_steps=int(opts.get("max_steps", 1000)),
        limits=ContextLimits(**opts["limits"]) if opts.get("limits") else ContextLimits(),
        max_subflow_depth=int(opts.get("max_subflow_depth", DEFAULT_MAX_SUBFLOW_DEPTH)),
        max_children=int(opts.get("max_children", DEFAULT_MAX_CHILDREN)),
    )


def _options(opts: dict[str, Any]) -> ExecutionOptions:
    """The (frozen, shared) options for an ``execution.created`` event's options.

    Executions of one engine all carry the same options: validating a ContextLimits
    for each one costs more than the rest of the applier. Values are keyed with their
    types, so inputs that compare equal but validate differently never share.
    """
    try:
        limits = opts.get("limits")
        key = (type(opts.get("record_history")), opts.get("record_history"),
               type(opts.get("max_steps")), opts.get("max_steps"),
               type(opts.get("max_subflow_depth")), opts.get("max_subflow_depth"),
               type(opts.get("max_children")), opts.get("max_children"),
               tuple((k, type(v), v) for k, v in limits.items()) if limits else None)
        found = _OPTIONS.get(key)
    except (TypeError, AttributeError):  # unhashable or odd options: no caching
        return _new_options(opts)
    if found is None:
        found = _new_options(opts)
        if len(_OPTIONS) < 1024:
            _OPTIONS[key] = found
    return found


def _created(event: Event) -> ExecutionState:
    d = event.data
    opts = d.get("options") or {}
    timeout = d.get("timeout")
    return ExecutionState(
        id=event.execution_id,
        flow_id=_shared(d["flow_id"]),
        flow_version=_shared(d["flow_version"]),
        tenant_id=_shared(event.tenant_id),
        created_at=event.timestamp_ms,
        updated_at=event.timestamp_ms,
        options=_options(opts),
        context=private_copy(d.get("context") or {}),
        retry_attempts=_NO_RETRIES,
        tokens=_NO_TOKENS,
        children=_NO_CHILDREN,
        ended_jobs=_NO_ENDED_JOBS,
        parent_execution_id=d.get("parent_execution_id"),
        parent_step_id=_shared(d.get("parent_step_id")),
        depth=d.get("depth", 0),
        timeout=TimeoutConfig(**timeout) if timeout else None,
        metadata=private_copy(d.get("metadata")),
        idempotency_key=d.get("idempotency_key"),
        idempotency_expires_at=d.get("idempotency_expires_at"),
        seq=event.seq,
    )


def _clear_wait(s: ExecutionState) -> None:
    s.wait_kind = None
    s.wake_at = None
    s.wait_started_at = None
    s.wait_reason = None
    s.wait_child_id = None
    s.signal_deadline = None


def _started(s: ExecutionState, e: Event) -> None:
    s.status = ExecutionStatus.RUNNING
    s.current_step_id = _shared(e.data["step_id"])


def _step_started(s: ExecutionState, e: Event) -> None:
    d = e.data
    s.status = ExecutionStatus.RUNNING
    s.current_step_id = _shared(d["step_id"])
    s.attempt = d["attempt"]
    s.attempt_id = d["attempt_id"]
    s.step_started_at = e.timestamp_ms
    s.step_input = private_copy(d.get("input"))
    s.step_count += 1
    _clear_wait(s)


def _write(context: dict[str, Any], writes: list[Any] | None) -> dict[str, Any]:
    for path, value in writes or ():
        context = set_path(context, path, private_copy(value))
    return context


def _step_completed(s: ExecutionState, e: Event) -> None:
    d = e.data
    context = _write(s.context, d.get("writes"))
    # one copy for the context and the history, only if either keeps it (a state's
    # containers are never changed in place, so the two may share it)
    stored = "output_key" in d
    output = private_copy(d.get("output")) if stored or s.options.record_history else None
    if stored:
        context = set_path(context, d["output_key"], output)
    s.context = context
    s.attempt_id = None
    outcome = d["outcome"]
    if outcome == "success" and d["step_id"] in s.retry_attempts:
        s.retry_attempts = {k: v for k, v in s.retry_attempts.items() if k != d["step_id"]}
    if s.options.record_history:
        s.history = (*s.history, {
            "step_id": d["step_id"],
            "handler_type": d.get("step_type", ""),
            "outcome": outcome,
            "attempt": d.get("attempt", 1),
            "input": s.step_input,
            "output": output,
            "error": private_copy(d.get("error")),
            "started_at": s.step_started_at,
            "completed_at": e.timestamp_ms,
            "duration_ms": d.get("duration_ms", 0),
        })
    s.step_input = None


def _step_retry(s: ExecutionState, e: Event) -> None:
    s.retry_attempts = {**s.retry_attempts, e.data["step_id"]: e.data["attempt"]}


def _retries_cleared(s: ExecutionState, step_id: str) -> None:
    if step_id in s.retry_attempts:
        s.retry_attempts = {k: v for k, v in s.retry_attempts.items() if k != step_id}


def _transition(s: ExecutionState, e: Event) -> None:
    _retries_cleared(s, e.data["from_step_id"])
    s.current_step_id = _shared(e.data["to_step_id"])


def _waiting(s: ExecutionState, e: Event) -> None:
    d = e.data
    s.status = ExecutionStatus.WAITING
    s.attempt_id = None
    s.wait_kind = _shared(d["kind"])
    s.wake_at = d.get("wake_at")
    s.wait_started_at = e.timestamp_ms
    s.wait_reason = _shared(d.get("reason"))
    s.wait_child_id = d.get("child_execution_id")


def _token_created(s: ExecutionState, e: Event) -> None:
    token = e.data["token"]
    s.tokens = {**s.tokens, token: TokenState(token, "active", e.timestamp_ms,
                                              e.data.get("expires_at"))}
    s.resume_token = token
    s.signal_deadline = e.data.get("expires_at")


def _token_status(status: str) -> Applier:
    def apply_status(s: ExecutionState, e: Event) -> None:
        token = e.data["token"]
        old = s.tokens.get(token)
        if old is not None:
            s.tokens = {**s.tokens, token: TokenState(token, status, old.created_at,
                                                      old.expires_at)}
        if s.resume_token == token:
            s.resume_token = None
    return apply_status


def _tokens_cleaned(s: ExecutionState, e: Event) -> None:
    expired = e.data["tokens"]
    tokens = dict(s.tokens)
    for token in expired:
        old = tokens.get(token)
        if old is not None:
            tokens[token] = TokenState(token, "expired", old.created_at, old.expires_at)
    s.tokens = tokens
    if s.resume_token in expired:
        s.resume_token = None


def _resumed(s: ExecutionState, e: Event) -> None:
    d = e.data
    if "output_key" in d:
        s.context = set_path(s.context, d["output_key"], private_copy(d.get("data")))
    elif d.get("merge") and isinstance(d.get("data"), dict):
        s.context = {**s.context, **private_copy(d["data"])}
    s.status = ExecutionStatus.RUNNING
    _clear_wait(s)


def _child_started(s: ExecutionState, e: Event) -> None:
    s.children = {**s.children, e.data["child_execution_id"]: "active"}


def _child_finished(s: ExecutionState, e: Event) -> None:
    s.children = {**s.children, e.data["child_execution_id"]: e.data["status"]}


def _completed(s: ExecutionState, e: Event) -> None:
    s.status = ExecutionStatus.COMPLETED
    s.attempt_id = None
    _clear_wait(s)


def _failed(s: ExecutionState, e: Event) -> None:
    d = e.data
    s.status = ExecutionStatus.FAILED
    s.attempt_id = None
    s.error = {"code": d["code"], "message": d.get("message", ""), "step_id": d.get("step_id"),
               "details": private_copy(d.get("details")), "timestamp": e.timestamp_ms}
    _clear_wait(s)


def _cancelling(s: ExecutionState, e: Event) -> None:
    s.status = ExecutionStatus.CANCELLING
    s.attempt_id = None


def _cancelled(s: ExecutionState, e: Event) -> None:
    s.status = ExecutionStatus.CANCELLED
    s.attempt_id = None
    s.cancellation = {"source": e.data["source"], "reason": e.data.get("reason"),
                      "cancelled_at": e.timestamp_ms}
    _clear_wait(s)


def _nothing(s: ExecutionState, e: Event) -> None:
    """Events that are facts about an execution but change none of its fields."""


APPLIERS: dict[str, Applier] = {
    n.EXECUTION_STARTED: _started,
    n.STEP_STARTED: _step_started,
    n.STEP_COMPLETED: _step_completed,
    n.STEP_RETRY: _step_retry,
    n.STEP_TIMEOUT: _nothing,
    n.TRANSITION: _transition,
    n.EXECUTION_WAITING: _waiting,
    n.EXECUTION_RESUMED: _resumed,
    n.TOKEN_CREATED: _token_created,
    n.TOKEN_USED: _token_status("used"),
    n.TOKEN_REVOKED: _token_status("revoked"),
    n.TOKENS_CLEANED: _tokens_cleaned,
    n.CHILD_STARTED: _child_started,
    n.CHILD_ATTACHED: _child_started,
    n.CHILD_FINISHED: _child_finished,
    n.EXECUTION_COMPLETED: _completed,
    n.EXECUTION_FAILED: _failed,
    n.EXECUTION_CANCELLING: _cancelling,
    n.EXECUTION_CANCELLED: _cancelled,
    n.IDEMPOTENCY_HIT: _nothing,
    n.PIPE_ROW: _nothing,
    n.EMAIL_SENT: _nothing,
    n.EMAIL_RECEIVED: _nothing,
    **JOB_APPLIERS,
}


def apply(state: ExecutionState | None, event: Event) -> ExecutionState | None:
    """The state after ``event``. Events at or below the state's seq change nothing, so
    redelivered events are harmless."""
    if event.seq == 0:
        return state
    if state is None:
        return _created(event) if event.type == n.EXECUTION_CREATED else None
    if event.seq <= state.seq:
        return state
    applier = APPLIERS.get(event.type)
    if applier is not None:
        applier(state, event)
    state.seq = event.seq
    state.updated_at = event.timestamp_ms
    return state


def replay(events: list[Event], upto_seq: int | None = None) -> ExecutionState | None:
    """One execution's state rebuilt from its events (optionally only up to a seq)."""
    state: ExecutionState | None = None
    for event in events:
        if upto_seq is not None and event.seq > upto_seq:
            break
        state = apply(state, event)
    return state


def apply_to_partition(partition: PartitionState, event: Event) -> None:
    """Apply an event to a partition's state, keeping its indexes in step."""
    if event.command_id is not None:
        partition.note_command(event.command_id)
    execution_id = event.execution_id
    if event.seq == 0:
        pass
    elif execution_id.startswith(_ENTITY_PREFIXES):  # one test for most events
        if is_trigger_entity(execution_id):
            trigger = apply_trigger(partition.triggers.get(execution_id), event)
            if trigger is not None:
                partition.triggers[execution_id] = trigger
        elif is_form_entity(execution_id):
            form = apply_form(partition.forms.get(execution_id), event)
            if form is not None:
                partition.forms[execution_id] = form
        else:
            _apply_execution(partition, execution_id, event)
    else:
        _apply_execution(partition, execution_id, event)
    if partition.ending:
        forget_ended(partition, event.timestamp_ms)


def _apply_execution(partition: PartitionState, execution_id: str, event: Event) -> None:
    state = partition.executions.get(execution_id)
    # read before apply, which mutates state
    due_before = forget_at(state) if state is not None and state.is_terminal else None
    new = apply(state, event)
    if new is not None:
        if new.is_terminal:
            _note_ending(partition, due_before, new)
            new = new.retired()
        partition.executions[execution_id] = new
    if event.type == n.EXECUTION_CREATED:
        index_created(partition, event)


RETAIN_ENDED_MS = 60 * 60_000
"""How long a partition keeps an ended execution (retired: see
``ExecutionState.retired``) after its last event, at least. Until then a command about
it is refused as about an ended execution (``NOT_WAITING``, ``NOT_CANCELLABLE`` …);
after, as about one the processor no longer knows (``EXECUTION_NOT_FOUND``, with the
reason). The projection keeps every execution; this bounds the processor's memory and
its snapshots to the executions of about the last hour, plus the ids of older ones."""


def forget_at(state: ExecutionState) -> int:
    """When an ended execution may be forgotten: ``RETAIN_ENDED_MS`` after its last
    event, and never while its idempotency key can still be found (the start that
    finds it must get this execution back, not a new one)."""
    due = state.updated_at + RETAIN_ENDED_MS
    expires = state.idempotency_expires_at
    if expires is not None:
        due = max(due, expires + FORGET_KEYS_AFTER_MS)
    return due


def _note_ending(partition: PartitionState, due_before: int | None,
                 state: ExecutionState) -> None:
    """Keep ``partition.ending`` never late for ``state``, which is ended after an event
    (``due_before``: its ``forget_at`` before the event, None if it had not ended).

    An execution that just ended gets its entry. One that had ended already keeps the
    entry it has while its time to forget moves later (the entry is early: checked
    again when it comes up), but gets another when that time moves earlier: an event
    stamped before the last one (a new owner whose clock is behind, an idempotency hit
    or a revoke) sets ``updated_at`` back, and a snapshot's heap, built from the states,
    would forget it sooner than the old entry would (the entry left behind is skipped
    once the execution is gone)."""
    due = forget_at(state)
    if due_before is None or due < due_before:
        heapq.heappush(partition.ending, (due, state.id))


def forget_ended(partition: PartitionState, now: int) -> None:
    """Forget the ended executions due by ``now`` (the event clock, so a replay of the
    log forgets the same ones at the same events), keeping their ids.

    An entry comes up when its time is due and is checked against the execution as it
    is then: one that changed since (an idempotency hit moves its last event) is put
    back with its new time. So the executions forgotten after an event are exactly the
    ended ones due by then, however the heap was built (a snapshot rebuilds it)."""
    ending, executions = partition.ending, partition.executions
    while ending and ending[0][0] <= now:
        _, execution_id = heapq.heappop(ending)
        state = executions.get(execution_id)
        if state is None or not state.is_terminal:
            continue
        due = forget_at(state)
        if due > now:
            heapq.heappush(ending, (due, execution_id))
            continue
        del executions[execution_id]
        partition.forgotten.add(execution_id)


def ending_heap(executions: dict[str, ExecutionState]) -> list[tuple[int, str]]:
    """The ``ending`` heap of a partition holding ``executions`` (a snapshot has none)."""
    heap = [(forget_at(st), st.id) for st in executions.values() if st.is_terminal]
    heapq.heapify(heap)
    return heap


def index_created(partition: PartitionState, event: Event) -> None:
    key = event.data.get("idempotency_key")
    expires = event.data.get("idempotency_expires_at")
    if key and expires is not None:
        scope = event.data.get("idempotency_scope") or ""
        _index(partition.idempotency, scope, (event.execution_id, expires),
               event.timestamp_ms)


def _index(index: dict[str, tuple[str, int]], scope: str, entry: tuple[str, int],
           now: int) -> None:
    # re-inserted, so the index stays in the order keys were (last) taken
    index.pop(scope, None)
    index[scope] = entry
    _forget_expired_keys(index, now)


FORGET_KEYS_AFTER_MS = 10 * 60_000
"""How long past its expiry an idempotency key is kept: ``decide`` compares expiry
with the processor's clock, and a partition moved to another processor may meet a
clock a little behind; within this margin it still finds the key it would have."""


def _forget_expired_keys(index: dict[str, tuple[str, int]], now: int) -> None:
    """Drop idempotency keys from the oldest end, as far as they expired more than
    :data:`FORGET_KEYS_AFTER_MS` before ``now``.

    ``decide`` ignores an expired key anyway, so dropping it changes no decision (for
    clocks within the margin of each other); it keeps the index from growing with
    every key ever used. Keys taken earlier mostly expire earlier; one with a longer
    window holds back those behind it until it goes too. The clock is the event's,
    so a replay drops the same keys.
    """
    while index:
        scope = next(iter(index))
        if index[scope][1] + FORGET_KEYS_AFTER_MS > now:
            return
        del index[scope]


def adopt(partition: PartitionState, events: list[Event],
          states: dict[str, ExecutionState],
          triggers: dict[str, TriggerState] | None = None,
          forms: dict[str, FormState] | None = None) -> None:
    """Take a decision's outcome into the partition state.

    ``decide`` already applied the events to the draft ``states``; this adds the
    partition-level indexes the same way ``apply_to_partition`` does on replay.

    All or nothing: whatever reads the decision's events and states (and so may raise
    on a bad one) is worked out first, changing nothing; then the partition is changed
    by steps that do not raise on the values so checked. A command whose adoption
    raised leaves no index behind that a replay of the log would not rebuild.
    """
    # 1. work everything out
    command_ids = list(dict.fromkeys(  # dict: raises here on an id that cannot be a key
        event.command_id for event in events if event.command_id is not None))
    keys = [planned for event in events if event.type == n.EXECUTION_CREATED
            and (planned := _index_entry(event)) is not None]
    executions = partition.executions
    adopted: list[tuple[str, ExecutionState, tuple[int, str] | None]] = []
    for execution_id, state in states.items():
        ending: tuple[int, str] | None = None
        if state.is_terminal:
            before = executions.get(execution_id)  # decide changed a clone, not this
            due_before = forget_at(before) if before is not None and before.is_terminal \
                else None
            due = _checked_int(forget_at(state), "an ended execution's time to forget")
            if due_before is None or due < due_before:  # as _note_ending
                ending = (due, state.id)
            state = state.retired()
        adopted.append((execution_id, state, ending))
    now = _checked_int(events[-1].timestamp_ms, "an event's timestamp") if events else None
    # 2. change the partition
    for command_id in command_ids:
        partition.note_command(command_id)
    for scope, entry, at in keys:
        _index(partition.idempotency, scope, entry, at)
    for execution_id, state, ending in adopted:
        executions[execution_id] = state
        if ending is not None:
            heapq.heappush(partition.ending, ending)
    if triggers:
        partition.triggers.update(triggers)
    if forms:
        partition.forms.update(forms)
    if now is not None:
        # a decision's events share its clock: as apply_to_partition after each one
        forget_ended(partition, now)


def _checked_int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise TypeError(f"{what} is {type(value).__name__} {value!r}, not an int")
    return value


def _index_entry(event: Event) -> tuple[str, tuple[str, int], int] | None:
    """What ``index_created`` takes from an execution's creation, checked."""
    key = event.data.get("idempotency_key")
    expires = event.data.get("idempotency_expires_at")
    if not key or expires is None:
        return None
    scope = event.data.get("idempotency_scope") or ""
    if not isinstance(scope, str):
        raise TypeError(f"an idempotency scope is {type(scope).__name__}, not text")
    return (scope, (event.execution_id, _checked_int(expires, "an idempotency expiry")),
            _checked_int(event.timestamp_ms, "an event's timestamp"))
