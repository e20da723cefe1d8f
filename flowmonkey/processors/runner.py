"""The handler runner: runs one step attempt outside ``decide`` and turns whatever
happens (a result, an exception, a timeout, garbage) into a ``step.result`` command."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from flowmonkey.errors import FlowMonkeyError, HandlerNotFoundError, InputValidationError
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, trusted_command
from flowmonkey.handlers.base import ContextHelpers, HandlerParams, StepHandler, VaultProvider
from flowmonkey.handlers.deadline import running_until
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.inputs import missing_input, resolve_input
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.kernel.step_events import step_event_problem
from flowmonkey.model.execution import Execution
from flowmonkey.model.flow import Step
from flowmonkey.model.result import InvalidResult, StepResult, coerce_result

log = logging.getLogger("flowmonkey.runner")

HANDLER_NOT_FOUND = HandlerNotFoundError.code


class LazyExecutionParams(HandlerParams):
    """HandlerParams whose parts that copy the state are built only if the handler asks.

    Everything a handler receives is its own: the input, the context view and the
    helpers' context, the config and the execution snapshot are deep copies, so
    nothing it does to them reaches the state (which changes only through events).
    The copies are made on first use (``input``, ``context``, ``helpers``, ``config``
    and ``execution`` are properties here, shadowing the dataclass slots): a handler
    pays only for what it reads. The fields are set directly rather than through the
    dataclass ``__init__`` and a keyword dict.
    """

    __slots__ = ("_config", "_context", "_helpers", "_input", "_input_copied", "_snapshot",
                 "_state")

    def __init__(self, state: ExecutionState, input: Any, step: Step, attempt_id: str,
                 attempt: int, abort: asyncio.Event, vault: VaultProvider | None) -> None:
        """``input``: the resolved input, which may share objects with the state."""
        self._state = state
        self._snapshot: Execution | None = None
        self._helpers: ContextHelpers | None = None
        self._context: Mapping[str, Any] | None = None
        self._config: Mapping[str, Any] | None = None
        self._input = input
        self._input_copied = False
        self.step = step
        self.attempt_id = attempt_id
        self.attempt = attempt
        self.abort = abort
        self.vault = vault
        self.job = None  # a stateless handler's attempt: no job

    @property
    def execution(self) -> Execution:
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = self._state.to_execution()
        return snapshot

    @execution.setter
    def execution(self, value: Execution) -> None:
        self._snapshot = value

    @property
    def input(self) -> Any:
        if not self._input_copied:
            self._input = private_copy(self._input)
            self._input_copied = True
        return self._input

    @input.setter
    def input(self, value: Any) -> None:
        self._input = value
        self._input_copied = True

    def _copy_context(self) -> None:
        # one copy serves both: the helpers replace the dicts they change (set_path)
        context = private_copy(self._state.context)
        if self._context is None:
            self._context = MappingProxyType(context)
        if self._helpers is None:
            self._helpers = ContextHelpers(context, self._state.options.limits, private=True)

    @property
    def context(self) -> Mapping[str, Any]:
        if self._context is None:
            self._copy_context()
        assert self._context is not None
        return self._context

    @context.setter
    def context(self, value: Mapping[str, Any]) -> None:
        self._context = value

    @property
    def helpers(self) -> ContextHelpers:
        if self._helpers is None:
            self._copy_context()
        assert self._helpers is not None
        return self._helpers

    @helpers.setter
    def helpers(self, value: ContextHelpers) -> None:
        self._helpers = value

    @property
    def writes(self) -> list[tuple[str, Any]]:
        """What the handler wrote through its helpers (none if it never used them)."""
        return self._helpers.writes if self._helpers is not None else []

    @property
    def config(self) -> Mapping[str, Any]:
        config = self._config
        if config is None:
            # the step's config belongs to the flow definition, shared by every attempt
            config = self._config = private_copy(self.step.config)
        return config

    @config.setter
    def config(self, value: Mapping[str, Any]) -> None:
        self._config = value


class _Run:
    """One attempt's deadline. ``task`` and ``abort`` are dropped once it ends."""

    __slots__ = ("abort", "deadline", "expired", "task")

    def __init__(self, deadline: float, task: asyncio.Task[Any] | None,
                 abort: asyncio.Event | None) -> None:
        self.deadline = deadline
        self.task = task
        self.abort = abort
        self.expired = False


class _Deadlines:
    """The deadlines of running attempts, with ONE timer armed for the earliest.

    A timer handle (plus an ``asyncio.timeout``) per attempt costs more than the rest of
    running a fast handler. Attempts with the same timeout end up due in start order,
    so each timeout keeps a FIFO queue; finished attempts are dropped from its front.
    At a deadline the attempt's abort signal is set, then its task is cancelled.
    """

    def __init__(self) -> None:
        self._queues: dict[float, deque[_Run]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, loop: asyncio.AbstractEventLoop, timeout_s: float,
            task: asyncio.Task[Any] | None, abort: asyncio.Event) -> _Run:
        queue = self._queues.get(timeout_s)
        if queue is None:
            queue = self._queues[timeout_s] = deque()
        while queue and queue[0].task is None:
            queue.popleft()
        run = _Run(loop.time() + timeout_s, task, abort)
        queue.append(run)
        if self._timer is None or run.deadline < self._timer_at:
            self._arm(loop, run.deadline)
        return run

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._fire, loop, when)

    def _fire(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        self._timer = None
        earliest: float | None = None
        for timeout_s, queue in list(self._queues.items()):
            # Everything due at the time this timer was armed for is due now (as the
            # loop treats timer handles); the rest waits for the next timer.
            while queue and (queue[0].task is None or queue[0].deadline <= due):
                run = queue.popleft()
                task, abort = run.task, run.abort
                if task is not None and abort is not None:
                    run.expired = True
                    run.task = run.abort = None
                    abort.set()
                    task.cancel()
            if queue:
                head = queue[0].deadline
                earliest = head if earliest is None else min(earliest, head)
            else:
                del self._queues[timeout_s]
        if earliest is not None:
            self._arm(loop, earliest)


class StepRunner:
    """Runs handlers with the step's timeout and an abort signal."""

    def __init__(self, default_timeout_ms: int, clock_ms: Callable[[], int],
                 vault: VaultProvider | None = None) -> None:
        self.default_timeout_ms = default_timeout_ms
        self._clock_ms = clock_ms
        self._vault = vault
        self._deadlines = _Deadlines()

    async def run(self, state: ExecutionState, step: Step, handler: StepHandler | None,
                  abort: asyncio.Event) -> Command:
        """Run one attempt; never raises (except when cancelled)."""
        outcome = self.start(state, step, handler, abort)
        return outcome if isinstance(outcome, Command) else await outcome

    def start(self, state: ExecutionState, step: Step, handler: StepHandler | None,
              abort: asyncio.Event) -> Command | Coroutine[Any, Any, Command]:
        """Run one attempt until its handler first waits.

        Returns the result command when the handler finished without waiting (most do:
        routing, transforms, timers, results computed in memory), with no task and no
        trip through the event loop; else a coroutine that finishes the attempt under
        the step's timeout, to run as the attempt's own task (the timeout cancels the
        task that runs it). A task per attempt would be a sizeable share of a fast
        step's CPU (docs/performance.md).

        ``handler`` is None when this process has no handler for the step's type: which
        handlers a process has is its own fact, not the log's, so ``decide`` starts the
        step regardless and the attempt fails here, through a logged result.
        """
        attempt_id = state.attempt_id or ""
        data: dict[str, Any] = {"attempt_id": attempt_id, "step_id": step.id}
        if handler is None:
            log.warning("no handler for type %r in this process: step %r of execution %s "
                        "fails with %s", step.type, step.id, state.id, HANDLER_NOT_FOUND)
            data["raised"] = {"code": HANDLER_NOT_FOUND, "message": (
                f"no handler registered for type {step.type!r} (step {step.id!r})")}
            return self._command(state, data)
        timeout_ms = step.timeout_ms or self.default_timeout_ms
        started = time.perf_counter()
        try:
            step_input = resolve_input(step.input, state.context)  # copied on first use
        except Exception as exc:
            data["raised"] = {"code": "INPUT_ERROR", "message": f"step {step.id!r}: {exc}"}
            return self._command(state, data)
        params = LazyExecutionParams(state, step_input, step, attempt_id, state.attempt, abort,
                                     self._vault)
        attempt = _Attempt(state, step, handler, abort, data, params, started, timeout_ms)
        try:
            # The timer that enforces the timeout cannot fire while the handler runs
            # without waiting; long synchronous work checks this deadline itself.
            with running_until(attempt.deadline):
                pending = handler.execute(params)
                if not isinstance(pending, Coroutine):  # another awaitable: in a task
                    return self._finish(attempt, pending)
                waiting_on = pending.send(None)
        except StopIteration as stop:
            return self._outcome(attempt, stop.value)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # even a CancelledError of its own is the handler's
            return self._failure(attempt, exc)
        return self._finish(attempt, _Resumed(pending, waiting_on))

    async def _finish(self, attempt: _Attempt, pending: Awaitable[Any]) -> Command:
        # The abort signal is raised at the deadline before the handler is cancelled, so
        # a handler that watches it (or cleans up on cancellation) sees it set. As with
        # asyncio.timeout, the cancellation turns into a timeout only if nobody else
        # cancelled the task meanwhile.
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        run = self._deadlines.add(asyncio.get_running_loop(), attempt.timeout_ms / 1000, task,
                                  attempt.abort)
        try:
            try:
                with running_until(attempt.deadline):
                    raw = await pending
            except BaseException as exc:
                if run.expired and task is not None and task.uncancel() <= cancelling \
                        and isinstance(exc, asyncio.CancelledError):
                    raise TimeoutError from None
                raise
            if run.expired and task is not None:
                task.uncancel()  # the handler swallowed the cancellation and returned
        except Exception as exc:
            return self._failure(attempt, exc)
        finally:
            run.task = run.abort = None
        return self._outcome(attempt, raw)

    def _outcome(self, attempt: _Attempt, raw: Any) -> Command:
        """The command for what the handler returned."""
        state, data = attempt.state, attempt.data
        try:
            result = coerce_result(raw)
        except InvalidResult as exc:
            return self._failure(attempt, exc)
        if result.events:
            problem = step_event_problem(attempt.step, result.events)
            if problem is not None:
                return self._failure(attempt, InvalidResult(problem))
        if result.error is not None and result.outcome == "failure":
            result = _noting_missing_input(attempt, result)
        data["result"] = result
        writes = attempt.params.writes
        if writes:
            data["writes"] = writes
        if result.child is not None:
            data["child_execution_id"] = str(uuid.uuid4())
        if result.for_signal and not result.resume_token:
            # Tokens grant control over the execution: unguessable, never derived from ids.
            data["resume_token"] = secrets.token_urlsafe(32)
        return self._command(state, data, attempt.started)

    def _failure(self, attempt: _Attempt, exc: BaseException) -> Command:
        """The command for what the handler raised (or returned that is no result)."""
        state, step, data = attempt.state, attempt.step, attempt.data
        if isinstance(exc, TimeoutError):
            attempt.abort.set()
            data["timed_out"] = True
            data["timeout_ms"] = attempt.timeout_ms
        elif isinstance(exc, InvalidResult):
            data["raised"] = {"code": "HANDLER_ERROR", "message": f"step {step.id!r}: {exc}"}
        elif isinstance(exc, InputValidationError):
            data["raised"] = {"code": "INPUT_ERROR", "message": exc.message}
        elif isinstance(exc, FlowMonkeyError):
            data["raised"] = {"code": exc.code, "message": exc.message}
        else:
            # Secrets could sit in exception text from handlers; log the type, not the
            # message.
            log.info("handler %r raised %s at step %r", attempt.handler.metadata.type,
                     type(exc).__name__, step.id)
            data["raised"] = {"code": "HANDLER_ERROR",
                              "message": str(exc) or type(exc).__name__}
        if "raised" in data:
            note = missing_input(step.input, state.context)
            if note is not None:
                data["raised"]["message"] += f" ({note}, so the step's input was null)"
        return self._command(state, data, attempt.started)

    def _command(self, state: ExecutionState, data: dict[str, Any],
                 started: float | None = None) -> Command:
        if started is not None:
            data["duration_ms"] = int((time.perf_counter() - started) * 1000)
        return trusted_command(n.CMD_STEP_RESULT, f"result:{data['attempt_id']}", state.id,
                               self._clock_ms(), data, state.tenant_id)


class _Attempt:
    """What the runner keeps about one attempt between its start and its result."""

    __slots__ = ("abort", "data", "deadline", "handler", "params", "started", "state",
                 "step", "timeout_ms")

    def __init__(self, state: ExecutionState, step: Step, handler: StepHandler,
                 abort: asyncio.Event, data: dict[str, Any], params: LazyExecutionParams,
                 started: float, timeout_ms: int) -> None:
        self.state = state
        self.step = step
        self.handler = handler
        self.abort = abort
        self.data = data
        self.params = params
        self.started = started
        self.timeout_ms = timeout_ms
        # on time.monotonic's clock, for synchronous work (handlers/deadline.py)
        self.deadline = time.monotonic() + timeout_ms / 1000


class _Resumed:
    """Awaiting it finishes a coroutine that already ran up to its first wait
    (``waiting_on``, what it yielded): the rest of what ``await coro`` would have done."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def _noting_missing_input(attempt: _Attempt, result: StepResult) -> StepResult:
    """``result`` (a failure), its message saying the step's input key or path was
    missing when it was: the usual cause of a handler tripping over a null input."""
    note = missing_input(attempt.step.input, attempt.state.context)
    if note is None or result.error is None:
        return result
    error = replace(result.error,
                    message=f"{result.error.message} ({note}, so the step's input was null)")
    return replace(result, error=error)
