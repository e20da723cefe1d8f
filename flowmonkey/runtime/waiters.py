"""Waiters: the callers of ``create``/``resume``/``cancel``/``revoke_token`` waiting for
the event that answers their command, and the callers of ``wait`` waiting for an
execution to reach a status. The projector hands every applied batch to
:meth:`Waiters.on_events`, which resolves them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from flowmonkey.errors import WaitTimeout
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, Event
from flowmonkey.kernel.apply import replay as replay_events
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.log.base import Log, OutRecord
from flowmonkey.model.execution import Execution, ExecutionStatus

log = logging.getLogger("flowmonkey.engine")

RESOLVES = {
    n.CMD_START: {n.EXECUTION_CREATED, n.IDEMPOTENCY_HIT},
    n.CMD_RESUME: {n.EXECUTION_RESUMED},
    n.CMD_CANCEL: {n.EXECUTION_CANCELLED},
    n.CMD_REVOKE_TOKEN: {n.TOKEN_REVOKED},
    n.CMD_TRIGGER_REGISTER: {n.TRIGGER_REGISTERED},
    n.CMD_TRIGGER_ENABLE: {n.TRIGGER_ENABLED},
    n.CMD_TRIGGER_DISABLE: {n.TRIGGER_DISABLED},
    n.CMD_TRIGGER_FIRE: {n.TRIGGER_FIRED, n.TRIGGER_FAILED},
    n.CMD_FORM_REGISTER: {n.FORM_REGISTERED},
    n.CMD_FORM_SUBMIT: {n.FORM_SUBMITTED, n.FORM_REJECTED},
}
"""Per command type, the events that answer it (besides ``command.rejected``)."""

_NO_ANSWERS: frozenset[str] = frozenset()


STATUS_SET_BY: dict[str, ExecutionStatus] = {
    n.EXECUTION_STARTED: ExecutionStatus.RUNNING,
    n.STEP_STARTED: ExecutionStatus.RUNNING,
    n.EXECUTION_RESUMED: ExecutionStatus.RUNNING,
    n.EXECUTION_WAITING: ExecutionStatus.WAITING,
    n.EXECUTION_COMPLETED: ExecutionStatus.COMPLETED,
    n.EXECUTION_FAILED: ExecutionStatus.FAILED,
    n.EXECUTION_CANCELLING: ExecutionStatus.CANCELLING,
    n.EXECUTION_CANCELLED: ExecutionStatus.CANCELLED,
}
"""The event types that set an execution's status, and the status each sets
(``kernel.apply``'s appliers)."""

KEEP_STATUS = frozenset({
    n.STEP_COMPLETED, n.STEP_RETRY, n.STEP_TIMEOUT, n.TRANSITION, n.TOKEN_CREATED,
    n.TOKEN_USED, n.TOKEN_REVOKED, n.TOKENS_CLEANED, n.CHILD_STARTED, n.CHILD_ATTACHED,
    n.CHILD_FINISHED, n.IDEMPOTENCY_HIT, n.PIPE_ROW, n.EMAIL_SENT, n.EMAIL_RECEIVED,
    n.COMMAND_REJECTED,
})
"""Event types that change neither an execution's status nor its job: they wake no
``wait``. Any type in neither set (its creation, job events, types added later)
wakes every ``wait`` on its execution."""

_RESTING = frozenset({ExecutionStatus.WAITING, *(s for s in ExecutionStatus if s.is_terminal)})


def wakes(event_type: str, wanted: frozenset[ExecutionStatus]) -> bool:
    """Whether an event of ``event_type`` may bring its execution to one of ``wanted``
    (a ``wait`` reads it again only then, not after every event of the execution)."""
    if event_type in KEEP_STATUS:
        return False
    status = STATUS_SET_BY.get(event_type)
    return status is None or status in wanted


def resting(execution: Execution) -> bool:
    """Whether the execution is done or needs someone: ended, or waiting for anything
    but a job. A job is run by a worker and ends by itself (completed, failed, timed
    out), so an execution waiting on one is still on its way."""
    status = execution.status
    if status == ExecutionStatus.WAITING:
        return execution.job is None
    return status.is_terminal


@dataclass(slots=True, eq=False)
class Answer:
    """A sent command's answer: ``future`` gets the event; ``execution`` is, for a
    start that created its execution, the execution as that start left it.
    ``decided`` is what a processor in this process decided for such a start (its
    events and the state they lead to, see :meth:`Waiters.started`)."""

    command_type: str
    future: asyncio.Future[Event]
    execution: Execution | None = None
    decided: tuple[list[Event], ExecutionState] | None = None

    def event(self) -> Event:
        return self.future.result()


class Waiters:
    """The pending answers (``commands``, by command id) and ``wait`` calls
    (``executions``, by execution id) of one engine."""

    def __init__(self) -> None:
        self.commands: dict[str, Answer] = {}
        # per execution, its ``wait`` calls: each one's future, and the statuses it may
        # return at (an event setting another status does not wake it)
        self.executions: dict[str, list[tuple[asyncio.Future[None],
                                              frozenset[ExecutionStatus]]]] = {}

    def expect(self, command_id: str, command_type: str) -> Answer:
        """Wait (as well) for the answer to a command this engine does not send: the
        follow-up a decision sends, whose id is derived (``kernel.ids``). The caller
        :meth:`drop` s it when done."""
        answer = Answer(command_type, asyncio.get_running_loop().create_future())
        self.commands[command_id] = answer
        return answer

    def drop(self, command_id: str) -> None:
        answer = self.commands.pop(command_id, None)
        if answer is not None:
            answer.future.cancel()

    async def send(self, log_: Log, record: OutRecord, command: Command, timeout_s: float,
                   *, expedite: Callable[[Command], None] | None = None) -> Answer:
        """Publish ``record`` (carrying ``command``) and wait for the answer. With
        ``expedite``, hand the command to it once published (a cancel, decided ahead of
        any backlog by this process's processor of its partition)."""
        answer = Answer(command.type, asyncio.get_running_loop().create_future())
        self.commands[command.command_id] = answer
        try:
            # one record needs no transaction (on Kafka, an idempotent produce is enough)
            await log_.publish([record])
            if expedite is not None:
                # only now: what it is decided into must never be in the log without it
                expedite(command)
            await asyncio.wait_for(answer.future, timeout_s)
            return answer
        except TimeoutError:
            raise WaitTimeout(
                f"no answer to {command.type} for {command.execution_id!r} within {timeout_s}s; "
                "are the processors running?") from None
        finally:
            # answered, timed out, cancelled or never published: nobody waits any more
            self.commands.pop(command.command_id, None)

    async def wait(self, execution_id: str, read: Callable[[str], Awaitable[Execution | None]],
                   timeout_s: float, until: Iterable[ExecutionStatus] | None = None
                   ) -> Execution:
        """The execution (as ``read`` gives it) once its status is one of ``until``, or
        (``until`` None) once it rests (:func:`resting`); read again after each batch
        that touched it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        wanted = frozenset(until) if until is not None else None
        waking = wanted if wanted is not None else _RESTING
        while True:
            future: asyncio.Future[None] = loop.create_future()
            self.executions.setdefault(execution_id, []).append((future, waking))
            try:
                execution = await read(execution_id)
                if execution is not None and (
                        resting(execution) if wanted is None else execution.status in wanted):
                    return execution
                remaining = deadline - loop.time()
                if remaining <= 0:
                    status = execution.status.value if execution else "unknown"
                    raise WaitTimeout(f"execution {execution_id!r} still {status} after "
                                      f"{timeout_s}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(future, remaining)
            finally:
                self.forget(execution_id, future)

    def forget(self, execution_id: str, future: asyncio.Future[None]) -> None:
        """Drop a finished ``wait`` iteration's future (no event may ever pop it)."""
        future.cancel()
        waiters = self.executions.get(execution_id)
        if waiters is not None:
            waiters[:] = [w for w in waiters if w[0] is not future]
            if not waiters:
                del self.executions[execution_id]

    def started(self, command_id: str, events: list[Event], state: ExecutionState) -> None:
        """A processor in this process decided start ``command_id``: keep its events
        and the state they lead to on the start's answer, if one is awaited, so the
        answer need not fold the events again (``PartitionProcessor.on_started``)."""
        answer = self.commands.get(command_id)
        if answer is not None and answer.command_type == n.CMD_START:
            answer.decided = (events, state)

    def cancel_all(self) -> None:
        """Fail every pending answer (the engine stops)."""
        for answer in self.commands.values():
            answer.future.cancel()

    def on_events(self, events: Sequence[Event],
                  emit: Callable[[Event], None] | None = None) -> None:
        """Resolve what a batch of applied events answers; ``emit`` each event first."""
        waiters = self.commands
        execution_waiters = self.executions
        created: dict[str, tuple[Answer, Event]] = {}
        for event in events:
            if emit is not None:
                emit(event)
            if waiters and event.command_id in waiters:
                answer = waiters[event.command_id]
                if event.type == n.COMMAND_REJECTED or event.type in RESOLVES.get(
                        answer.command_type, _NO_ANSWERS):
                    del waiters[event.command_id]
                    if event.type == n.EXECUTION_CREATED:
                        created[event.execution_id] = (answer, event)  # after the batch
                    elif not answer.future.done():
                        answer.future.set_result(event)
            if execution_waiters and event.execution_id in execution_waiters:
                _wake(execution_waiters, event)
        if created:
            answer_creates(created, events)


def _wake(execution_waiters: dict[str, list[tuple[asyncio.Future[None],
                                                 frozenset[ExecutionStatus]]]],
          event: Event) -> None:
    """Wake the ``wait`` calls on ``event``'s execution it may satisfy; the others keep
    waiting (their futures stay registered)."""
    waiters = execution_waiters[event.execution_id]
    kept = []
    for future, wanted in waiters:
        if future.done():
            continue
        if wakes(event.type, wanted):
            future.set_result(None)
        else:
            kept.append((future, wanted))
    if kept:
        waiters[:] = kept
    else:
        del execution_waiters[event.execution_id]


def answer_creates(created: Mapping[str, tuple[Answer, Event]],
                   events: Sequence[Event]) -> None:
    """Answer ``create`` calls with their new executions as their start left them.

    An execution created in this batch has its whole history in it (its first
    event is here), so folding the events its start decided gives the state right
    after the start, without reading the projection back (a query per create on
    PostgreSQL). When a processor in this process handed over the state it decided
    (:meth:`Waiters.started`) from these very events, that state is the fold: it is
    used instead of folding them a second time. Any other decision of the start (one
    whose append failed, decided again elsewhere) has other events: folded.
    """
    histories: dict[str, list[Event]] = {execution_id: [] for execution_id in created}
    for event in events:
        history = histories.get(event.execution_id)
        # only what the start itself decided: a first step that finished at once
        # may have moved the execution on within the same batch
        if history is not None and event.seq > 0 and \
                event.command_id == created[event.execution_id][1].command_id:
            history.append(event)
    for execution_id, (answer, event) in created.items():
        if answer.future.done():
            continue
        try:
            history = histories[execution_id]
            decided = answer.decided
            if decided is not None and _same_events(decided[0], history):
                state: ExecutionState | None = decided[1]
            else:
                state = replay_events(history)
            if state is not None:
                # (a snapshot is the caller's own: it shares nothing with the events)
                answer.execution = state.to_execution()
        except Exception:
            # never strand a create: without the fold it reads the projection
            log.exception("could not fold the new execution %s", execution_id)
        answer.future.set_result(event)


def _same_events(decided: list[Event], logged: list[Event]) -> bool:
    """Whether the events a processor decided are those the log gave (the very
    objects on the embedded log; equal ones when decoded)."""
    return len(decided) == len(logged) and all(
        a is b or a == b for a, b in zip(decided, logged, strict=True))
