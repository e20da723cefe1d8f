"""TestHarness (API.md): run flows in-process on simulated time and assert on them.

Waits, retry backoff and timeouts complete at once in wall-clock time while each
execution sees time move by exactly the waited amount: when nothing is left to do
but wait for a timer, the harness moves the simulated clock to that timer.

A harness works from any event loop: the engine runs on the loop that started it,
and a call from another loop (``asyncio.run(t.run(...))`` twice in a plain test)
starts a fresh engine there, as a second ``run_sync`` does: executions of the
earlier loop are gone with it, ``t.events`` keeps accumulating.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flowmonkey.engine import CancelResult, CreateResult, Engine, EngineOptions
from flowmonkey.events.dispatcher import EventDispatcher
from flowmonkey.events.envelope import Event
from flowmonkey.handlers.base import StepHandler, VaultProvider
from flowmonkey.kernel.copies import private_event
from flowmonkey.kernel.state import WAIT_CHILD
from flowmonkey.kernel.timers import WAKE
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.flow import Flow
from flowmonkey.model.form import Form
from flowmonkey.model.tables import TableDef
from flowmonkey.model.trigger import Trigger
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.projections.base import WalEntry
from flowmonkey.projections.memory import MemoryProjection

_SETTLE_LIMIT_S = 30.0


@dataclass(frozen=True, slots=True)
class RunResult:
    execution: Execution
    events: list[Event]


class TestHarness:
    """An engine on an in-memory log, a memory projection and a simulated clock."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        handlers: Iterable[StepHandler] = (),
        flows: Iterable[Flow | Mapping[str, Any]] = (),
        tables: Iterable[TableDef] = (),
        record_history: bool | None = None,
        max_steps: int | None = None,
        timeout_ms: int | None = None,
        options: EngineOptions | None = None,
        *,
        partitions: int = 2,
        vault: VaultProvider | None = None,
        builtin_handlers: bool = True,
        workers: int | None = None,
        triggers: Iterable[Trigger | Mapping[str, Any]] = (),
        start_ms: int | None = None,
        forms: Iterable[Form | Mapping[str, Any]] = (),
    ) -> None:
        """``handlers`` come on top of the built-in ones, as with ``Engine``
        (``builtin_handlers=False`` leaves those out).

        ``workers``: the engine's in-process worker runs stateful handlers' jobs, that
        many at once (None: a default number, when some handler is stateful; 0: no
        worker, for tests that drive jobs by hand). Its heartbeats run on the
        simulated clock, so ``advance()`` moves them with leases and job timeouts;
        ``settle()`` waits for running job handlers as it does for other handlers.
        On ``close()`` running jobs are released at once (no grace).

        ``triggers``: as with ``Engine``; schedules tick on the simulated clock
        (``advance()``; ``outage()`` for time that passes with nothing running).
        ``start_ms``: the simulated clock's start (default: now), e.g. just before a
        daylight-saving change.

        ``forms``: as with ``Engine``; rate-limit and duplicate windows run on the
        simulated clock (``advance()``)."""
        base = options or EngineOptions(record_history=True, max_steps=100)
        self.options = dataclasses.replace(
            base,
            record_history=base.record_history if record_history is None else record_history,
            max_steps=base.max_steps if max_steps is None else max_steps,
            timeout_ms=base.timeout_ms if timeout_ms is None else timeout_ms,
        )
        self._handlers = list(handlers)
        self._flows = list(flows)
        self._tables = list(tables)
        self._partitions = partitions
        self._vault = vault
        self._builtin_handlers = builtin_handlers
        self._workers = workers
        self._triggers = list(triggers)
        self._forms = list(forms)
        self._start_ms = start_ms
        self.events: list[Event] = []
        self._build()

    def _build(self) -> None:
        self.clock = SimulatedClock(self._start_ms)
        self.dispatcher = EventDispatcher(mode="sync")
        self.dispatcher.on("*", self.events.append)
        self.projection = MemoryProjection(notify=self._notify)
        self.engine = Engine(
            flows=self._flows, handlers=self._handlers, options=self.options,
            log=EmbeddedLog(partitions=self._partitions, now_ms=self.clock.now_ms),
            projection=self.projection, dispatcher=self.dispatcher, clock=self.clock,
            tables=self._tables, vault=self._vault,
            builtin_handlers=self._builtin_handlers, workers=self._workers,
            worker_grace_s=0.0, triggers=self._triggers, forms=self._forms)
        self._started = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def _notify(self, type: str, payload: dict[str, Any]) -> None:
        self.engine._notify(type, payload)

    def _abandon_other_loop(self) -> None:
        """Forget an engine started on another event loop: its tasks ran on that loop
        (``asyncio.run`` cancelled them when it ended) and cannot run on this one."""
        if self._started and self._loop is not asyncio.get_running_loop():
            self._started = False
            self._closed = True

    async def _ensure_started(self) -> None:
        self._abandon_other_loop()
        if not self._started:
            if self._closed:
                # A stopped engine's log cannot reopen (e.g. a second run_sync): start
                # afresh on a new engine; t.events keeps accumulating.
                self._build()
            await self.engine.start()
            self._started = True
            self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._abandon_other_loop()
        if self._started:
            await self.engine.stop()
            self._started = False
            self._closed = True

    async def __aenter__(self) -> TestHarness:
        await self._ensure_started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def reset(self) -> None:
        """Forget every execution, row and event (registrations are kept)."""
        if self._started and self._loop is not None and not self._loop.is_closed():
            raise RuntimeError("close the harness (await t.close()) before reset()")
        self.events.clear()
        self._build()

    # ------------------------------------------------------------------ driving

    async def settle(self) -> None:
        """Let every processor, handler and projection finish what it can do now."""
        await self._ensure_started()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SETTLE_LIMIT_S
        quiet = 0
        while True:
            failure = self.engine.processor_failure()
            if failure is not None:
                raise RuntimeError("a processor stopped") from failure
            if await self.engine.settled():
                quiet += 1
                if quiet >= 3:  # stable across a few loop turns: nothing in transit
                    return
            else:
                quiet = 0
            if loop.time() > deadline:
                raise TimeoutError("the engine did not settle within "
                                   f"{_SETTLE_LIMIT_S}s (a handler that never returns?)")
            busy = any(p.in_flight for p in self.engine.processors)
            await asyncio.sleep(0.001 if busy else 0)

    def _next_wake(self) -> int | None:
        dues = [t.due for p in self.engine.processors for t in p.timers.values()
                if t.kind == WAKE]
        return min(dues) if dues else None

    async def advance(self, ms: int) -> None:
        """Move simulated time by ``ms`` and let everything that falls due run."""
        await self._ensure_started()
        await self.settle()
        target = self.clock.now_ms() + ms
        while True:
            due = self.clock.next_due()
            if due is None or due > target:
                break
            self.clock.advance_to(due)
            await self.settle()
        self.clock.advance_to(target)
        await self.settle()

    async def outage(self, ms: int) -> None:
        """Let ``ms`` pass with nothing running (as if every process were down), then
        let what fell due meanwhile run, late, at the new time."""
        await self._ensure_started()
        await self.settle()
        self.clock.jump(ms)
        await self.advance(0)

    async def crash_worker(self) -> None:
        """Stop the engine's worker mid-job as a crash would: its running handlers are
        cancelled and nothing is sent (no release, no failure), so their jobs stay
        claimed until their leases run out (``advance()`` past them). A fresh worker
        (a new worker id) takes its place, as a restarted process would, and claims
        them then, resuming from their last checkpoints; anything the crashed one
        might still send is refused (fencing)."""
        await self._ensure_started()
        await self.engine._wiring.crash_worker()

    async def _run_to_rest(self, execution_id: str) -> Execution:
        """Run until the execution ends or waits for a signal (time waits are skipped)."""
        while True:
            await self.settle()
            execution = await self.engine.get(execution_id)
            assert execution is not None
            if execution.status.is_terminal:
                return execution
            waiting_on_time = execution.status == ExecutionStatus.WAITING and (
                execution.wake_at is not None or self._waits_on_child(execution))
            wake = self._next_wake()
            if not waiting_on_time or wake is None:
                return execution
            self.clock.advance_to(wake)

    def _waits_on_child(self, execution: Execution) -> bool:
        for processor in self.engine.processors:
            state = processor.execution_state(execution.id)
            if state is not None:
                return state.wait_kind == WAIT_CHILD
        return False

    # ------------------------------------------------------------------ API

    async def create(self, flow_id: str, context: Mapping[str, Any] | None = None,
                     **kwargs: Any) -> CreateResult:
        """Create an execution and let it run until it rests, without skipping time."""
        await self._ensure_started()
        created = await self.engine.create(flow_id, context, **kwargs)
        await self.settle()
        return created

    async def run(self, flow_id: str, context: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> RunResult:
        """Create and run to completion, failure, cancellation or a signal wait."""
        await self._ensure_started()
        created = await self.engine.create(flow_id, context, **kwargs)
        execution = await self._run_to_rest(created.execution.id)
        return RunResult(execution, self.events_for(execution.id))

    def run_sync(self, flow_id: str, context: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> RunResult:
        """``run`` for plain (non-async) tests."""

        async def go() -> RunResult:
            try:
                return await self.run(flow_id, context, **kwargs)
            finally:
                await self.close()

        return asyncio.run(go())

    async def resume(self, execution_id: str, token: str, data: Any = None) -> Execution:
        await self._ensure_started()
        await self.engine.resume(execution_id, token, data)
        return await self._run_to_rest(execution_id)

    async def cancel(self, execution_id: str, source: str = "user",
                     reason: str | None = None) -> CancelResult:
        await self._ensure_started()
        result = await self.engine.cancel(execution_id, source, reason)
        await self.settle()
        return result

    async def get(self, execution_id: str) -> Execution | None:
        await self._ensure_started()
        await self.settle()
        return await self.engine.get(execution_id)

    def events_for(self, execution_id: str) -> list[Event]:
        """The execution's events so far, the caller's own (their data copied: the
        listener got the objects the engine handed the projection too)."""
        return [private_event(e) for e in self.events if e.execution_id == execution_id]

    def table_rows(self, table_id: str) -> list[dict[str, Any]]:
        return self.projection.table_rows(table_id)

    def wal_entries(self) -> list[WalEntry]:
        return self.projection.wal_entries()

    # ------------------------------------------------------------------ assertions

    @staticmethod
    def assert_completed(execution: Execution) -> None:
        if execution.status != ExecutionStatus.COMPLETED:
            detail = f": {execution.error.code} {execution.error.message}" \
                if execution.error else ""
            raise AssertionError(f"expected completed, got {execution.status.value}{detail}")

    @staticmethod
    def assert_failed(execution: Execution, code: str | None = None) -> None:
        if execution.status == ExecutionStatus.CANCELLED:
            if code is not None and code != "CANCELLED":
                raise AssertionError(f"expected code {code}, but the execution was cancelled")
            return
        if execution.status != ExecutionStatus.FAILED:
            raise AssertionError(f"expected failed, got {execution.status.value}")
        actual = execution.error.code if execution.error else None
        if code is not None and actual != code:
            message = execution.error.message if execution.error else ""
            raise AssertionError(f"expected code {code}, got {actual}: {message}")

    @staticmethod
    def assert_cancelled(execution: Execution) -> None:
        if execution.status != ExecutionStatus.CANCELLED:
            raise AssertionError(f"expected cancelled, got {execution.status.value}")
        if execution.cancellation is None:
            raise AssertionError("expected cancellation info, but none found")

    @staticmethod
    def assert_context(execution: Execution, expected: Mapping[str, Any]) -> None:
        for key, want in expected.items():
            got = execution.context.get(key, _Missing)
            if got != want:
                raise AssertionError(
                    f"context[{key!r}]: expected {json.dumps(want, default=str)}, got "
                    f"{'<missing>' if got is _Missing else json.dumps(got, default=str)}")


class _Missing:
    pass
