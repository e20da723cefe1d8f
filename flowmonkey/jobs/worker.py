"""The Worker: claims the jobs of its handlers' types and runs them.

It follows the jobs topic (:mod:`flowmonkey.jobs.feed`), claims pending jobs up to
``concurrency`` at once (a ``job.claim`` command, decided by the job's execution
partition; a lost race is told at once and the worker moves on), runs each job's
handler with ``params.job`` set, heartbeats every ``heartbeat_ms`` of the job on the
worker's clock (so simulated time drives it in the TestHarness), and ends the job
with the handler's outcome (``job.complete`` / ``job.fail``).

Fencing is the kernel's: a worker whose claim was superseded has every write
refused. When a heartbeat's (or a checkpoint's) answer says the job was superseded
or cancelled, the handler's task is cancelled and nothing more is sent about it.

``stop()`` is graceful: no more claims, running jobs get ``grace_s`` seconds to
finish, then the rest are released (``job.release``) so another worker takes them
at once instead of after their lease. ``kill()`` stops at once and sends nothing,
as a crashed process would (for tests of re-claim and fencing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, Self

from flowmonkey.errors import JobCancelledError, JobSupersededError
from flowmonkey.events import names as n
from flowmonkey.events.codec import encode_command, headers_for
from flowmonkey.events.envelope import Command
from flowmonkey.handlers.base import StepHandler, VaultProvider
from flowmonkey.handlers.registry import FlowRegistry
from flowmonkey.jobs import outcome
from flowmonkey.jobs.feed import Candidate, JobsFeed
from flowmonkey.jobs.flows import FlowLookup
from flowmonkey.jobs.handle import CANCELLED, SUPERSEDED, JobHandle
from flowmonkey.jobs.params import job_params
from flowmonkey.kernel.job_checks import MAX_WORKER_ID_CHARS
from flowmonkey.log.base import Log, OutRecord
from flowmonkey.log.topics import Topics
from flowmonkey.metrics import Metrics, default_metrics
from flowmonkey.processors.clock import Clock, SystemClock, TimerHandle

log = logging.getLogger("flowmonkey.jobs")

DEFAULT_CONCURRENCY = 4
DEFAULT_GRACE_S = 30.0
ANSWER_TIMEOUT_S = 30.0
"""How long a command's answer is waited for (real time) before giving up on it."""

_RELEASE = "release"
_KILLED = "killed"


class _Run:
    """One job this worker runs: its handle, its task and its heartbeat timer."""

    __slots__ = ("abort", "beat", "handle", "stop_reason", "task")

    def __init__(self, handle: JobHandle) -> None:
        self.handle = handle
        self.abort: asyncio.Event | None = None  # the handler's params.abort
        self.task: asyncio.Task[None] | None = None
        self.beat: TimerHandle | None = None
        self.stop_reason: str | None = None  # why this worker cancelled the handler


class Worker:
    """Runs stateful handlers' jobs. Use ``async with Worker(...):`` or
    ``start()`` / ``stop()``."""

    def __init__(
        self,
        *,
        log: Log,
        handlers: Iterable[StepHandler],
        concurrency: int = DEFAULT_CONCURRENCY,
        types: Iterable[str] | None = None,
        worker_id: str | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        flows: FlowRegistry | None = None,
        vault: VaultProvider | None = None,
        close_log: bool = True,
    ) -> None:
        """``handlers``: stateful handlers (``@handler(..., stateful=True)``); ``types``
        narrows the job types claimed to some of theirs. ``grace_s``: how long
        ``stop()`` lets running jobs finish before releasing them. ``flows``: a
        registry holding the jobs' flows (an engine's, in its process); without it
        they are read from the flows topic. ``close_log``: ``stop()`` closes ``log``
        (off when the log belongs to an engine)."""
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(f"Worker concurrency must be a whole number >= 1, "
                             f"not {concurrency!r}")
        if not isinstance(grace_s, int | float) or grace_s < 0:
            raise ValueError(f"Worker grace_s must be 0 or more seconds, not {grace_s!r}")
        self._handlers: dict[str, StepHandler] = {}
        for handler in handlers:
            meta = handler.metadata
            if not meta.stateful:
                raise ValueError(f"handler {meta.type!r} is not stateful: a worker runs only "
                                 "stateful handlers (@handler(..., stateful=True))")
            self._handlers[meta.type] = handler
        if not self._handlers:
            raise ValueError("a Worker needs at least one stateful handler")
        wanted = set(self._handlers) if types is None else set(types)
        unknown = sorted(wanted - set(self._handlers))
        if unknown:
            raise ValueError(f"job types {unknown} have no handler in this worker "
                             f"(it has {sorted(self._handlers)})")
        if not wanted:
            raise ValueError("types must name at least one job type")
        self.types = frozenset(wanted)
        self.worker_id = (worker_id or _default_worker_id())[:MAX_WORKER_ID_CHARS]
        if not self.worker_id.strip():
            raise ValueError("worker_id must not be empty")
        self.concurrency = concurrency
        self.grace_s = float(grace_s)
        self.log = log
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics if metrics is not None else default_metrics()
        self.vault = vault
        self._close_log = close_log
        self.topics = Topics(log.topic_prefix)
        self._flows = FlowLookup(log, self.topics.flows, flows)
        self._feed = JobsFeed(log, self.topics.jobs, self.types, self._wake_claimer)
        self._running: dict[str, _Run] = {}
        self._claiming = 0
        self._wake = asyncio.Event()
        self._accepting = False
        self._started = False
        self._claimer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._claims: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start following the jobs topic; claiming begins once it is read up to its
        end as of now (so stale offers are not claimed)."""
        if self._started:
            return
        await self.log.start()
        await self._feed.start()
        self._started = True
        ends = await self._feed.ends()
        while not await self._feed.reached(ends):
            if self._feed.failure is not None:
                raise self._feed.failure
            await asyncio.sleep(0.005)
        self._accepting = True
        self._claimer = asyncio.get_running_loop().create_task(
            self._claim_loop(), name=f"flowmonkey-worker-{self.worker_id}")
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming, give running jobs ``grace_s`` seconds, release the rest."""
        if not self._started:
            return
        self._accepting = False
        await self._stop_claimer()
        # claims in flight finish: a won one is released at once
        await asyncio.gather(*self._claims, return_exceptions=True)
        runs = [r.task for r in self._running.values() if r.task is not None]
        if runs and self.grace_s > 0:
            await asyncio.wait(runs, timeout=self.grace_s)
        for run in list(self._running.values()):
            self._cancel(run, _RELEASE)
        await asyncio.gather(*runs, return_exceptions=True)
        await self._shut()
        if self._close_log:
            await self.log.close()

    async def kill(self) -> None:
        """Stop at once and send nothing, as if the process died: running handlers
        are cancelled, their jobs stay claimed until their leases run out."""
        if not self._started:
            return
        self._accepting = False
        await self._stop_claimer()
        runs = [r.task for r in self._running.values() if r.task is not None]
        for run in list(self._running.values()):
            self._cancel(run, _KILLED)
        await asyncio.gather(*runs, return_exceptions=True)
        await self._shut()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def _stop_claimer(self) -> None:
        if self._claimer is not None:
            self._claimer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._claimer
            self._claimer = None

    async def _shut(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._feed.stop()
        self._started = False

    # ------------------------------------------------------------------ introspection

    @property
    def running(self) -> int:
        """Jobs whose handlers run now."""
        return len(self._running)

    @property
    def pending(self) -> int:
        """Pending jobs of this worker's types it knows of."""
        return len(self._feed.candidates)

    @property
    def failure(self) -> BaseException | None:
        """Why reading the jobs topic stopped, if it did."""
        return self._feed.failure

    async def settled(self) -> bool:
        """True when this worker has nothing to do now: no claim, handler or answer in
        flight, no pending job it could claim, the jobs topic read to its end."""
        if not self._started:
            return True
        if self._running or self._claiming or self._feed.awaiting or \
                any(not t.done() for t in self._tasks):
            return False
        if self._accepting and self._claimable() is not None:
            return False
        return await self._feed.reached(await self._feed.ends())

    # ------------------------------------------------------------------ claiming

    def _wake_claimer(self) -> None:
        self._wake.set()

    def _claimable(self) -> Candidate | None:
        for job_id, candidate in self._feed.candidates.items():
            if job_id not in self._running:
                return candidate
        return None

    async def _claim_loop(self) -> None:
        while self._accepting:
            await self._wake.wait()
            self._wake.clear()
            while self._accepting and \
                    self.concurrency - len(self._running) - self._claiming > 0:
                candidate = self._claimable()
                if candidate is None:
                    break
                del self._feed.candidates[candidate.job_id]
                self._claiming += 1
                claim = self._spawn(self._claim(candidate))
                self._claims.add(claim)
                claim.add_done_callback(self._claims.discard)

    async def _claim(self, candidate: Candidate) -> None:
        started = time.perf_counter()
        try:
            view = await self._ask_about(
                n.CMD_JOB_CLAIM, candidate.execution_id, candidate.tenant_id,
                {"job_id": candidate.job_id, "worker_id": self.worker_id})
        finally:
            self._claiming -= 1
            self._wake.set()
        self.metrics.job_claim_seconds.observe(time.perf_counter() - started)
        answer = (view or {}).get("answer") or {}
        if view is None or not answer.get("accepted"):
            self.metrics.jobs_claims_lost.inc()
            return
        self.metrics.jobs_claimed.inc()
        run = _Run(JobHandle(self, view))
        self._running[candidate.job_id] = run
        self.metrics.jobs_running.set(len(self._running))
        if not self._accepting:  # stopping: give it straight back
            run.stop_reason = _RELEASE
        run.task = asyncio.get_running_loop().create_task(
            self._execute(run), name=f"flowmonkey-job-{candidate.job_id}")
        self._schedule_beat(run)

    # ------------------------------------------------------------------ running

    async def _execute(self, run: _Run) -> None:
        handle = run.handle
        view = handle.view
        started = self.clock.now_ms()
        try:
            if run.stop_reason == _RELEASE:
                await self._release(run)
                return
            ending = await self._run_handler(run, started)
            if ending is None or handle.ended is not None:
                self._count_lost(handle)
                return
            type_, data = ending
            answer = await self.ask(type_, view, data)
            if answer is None:
                log.warning("job %s: no answer to %s", handle.id, type_)
            elif answer["accepted"]:
                (self.metrics.jobs_completed if type_ == n.CMD_JOB_COMPLETE
                 else self.metrics.jobs_failed).inc()
            else:
                handle.note(answer)
                self._count_lost(handle)
        finally:
            handle.close()
            if run.beat is not None:
                run.beat.cancel()
                run.beat = None
            self._running.pop(handle.id, None)
            self.metrics.jobs_running.set(len(self._running))
            self._wake.set()

    async def _run_handler(self, run: _Run, started: int) -> outcome.Outcome | None:
        """Run the job's handler; the command that ends the job, or None when nothing
        is to be sent (the job was lost, or this worker stops)."""
        handle = run.handle
        view = handle.view
        handler = self._handlers[str(view["type"])]
        try:
            flow = await self._flows.get(str(view["flow_id"]), str(view["flow_version"]))
            step = flow.steps.get(str(view["step_id"])) if flow is not None else None
            if step is None:
                return outcome.failed("FLOW_NOT_FOUND", (
                    f"job {handle.id}: this worker does not know step {view['step_id']!r} "
                    f"of flow {view['flow_id']}@{view['flow_version']}"), 0)
            params = job_params(handle, step, self.vault)
            run.abort = params.abort
            raw = await handler.execute(params)
        except asyncio.CancelledError:
            reason = run.stop_reason
            task = asyncio.current_task()
            if reason is None or task is None:
                raise  # not ours: the loop is going away
            task.uncancel()
            if reason == _RELEASE:
                await self._release(run)
            return None
        except (JobSupersededError, JobCancelledError):
            if handle.ended is not None:
                return None
            raise
        except Exception as exc:
            return outcome.raised(exc, handler.metadata.type, self._since(started))
        writes = params.helpers.writes
        return outcome.returned(raw, writes, self._since(started))

    async def _release(self, run: _Run) -> None:
        answer = await self.ask(n.CMD_JOB_RELEASE, run.handle.view,
                                {"reason": f"worker {self.worker_id} stopping"})
        if answer is not None and answer["accepted"]:
            self.metrics.jobs_released.inc()

    def _count_lost(self, handle: JobHandle) -> None:
        if handle.ended == SUPERSEDED:
            self.metrics.jobs_superseded.inc()
        elif handle.ended == CANCELLED:
            self.metrics.jobs_cancelled.inc()

    def _cancel(self, run: _Run, reason: str) -> None:
        if run.stop_reason is None:
            run.stop_reason = reason
        if run.abort is not None:  # set before the cancellation, as the runner does
            run.abort.set()
        if run.task is not None and not run.task.done():
            run.task.cancel()

    def _since(self, started: int) -> int:
        return max(0, self.clock.now_ms() - started)

    # ------------------------------------------------------------------ heartbeats

    def _schedule_beat(self, run: _Run, sent_at: int | None = None) -> None:
        if run.task is None or run.task.done() or run.stop_reason is not None:
            return
        base = self.clock.now_ms() if sent_at is None else sent_at
        due = base + int(run.handle.view["heartbeat_ms"])
        run.beat = self.clock.call_at(due, lambda: self._beat(run))

    def _beat(self, run: _Run) -> None:
        run.beat = None
        if run.task is None or run.task.done() or run.stop_reason is not None:
            return
        self._spawn(self._heartbeat(run))

    async def _heartbeat(self, run: _Run) -> None:
        sent_at = self.clock.now_ms()
        answer = await self.ask(n.CMD_JOB_HEARTBEAT, run.handle.view, {})
        if answer is not None and not answer["accepted"]:
            run.handle.note(answer)
            if run.handle.ended is not None:
                self._cancel(run, run.handle.ended)
                return
        self._schedule_beat(run, sent_at)

    # ------------------------------------------------------------------ commands

    async def ask(self, type: str, view: dict[str, Any],
                  data: dict[str, Any]) -> dict[str, Any] | None:
        """Send a write about the job ``view`` names (as the instance that holds it);
        the answer, or None if none came in time."""
        answered = await self._ask_about(type, str(view["execution_id"]), view.get("tenant_id"),
                                         {"job_id": view["job_id"],
                                          "instance_id": view["instance_id"], **data})
        if answered is None:
            return None
        answer: dict[str, Any] = answered["answer"]
        return answer

    def tell(self, type: str, view: dict[str, Any], data: dict[str, Any]) -> None:
        """Send a write and wait for no answer (progress reports)."""
        command = self._command(type, str(view["execution_id"]), view.get("tenant_id"), {
            "job_id": view["job_id"], "instance_id": view["instance_id"], **data})
        self._spawn(self._publish(command))

    async def _ask_about(self, type: str, execution_id: str, tenant_id: str | None,
                         data: dict[str, Any]) -> dict[str, Any] | None:
        """Send a command; the view that answers it (None: none in time)."""
        command = self._command(type, execution_id, tenant_id, data)
        future = self._feed.expect(command.command_id)
        try:
            await self._publish(command)
            return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
        except TimeoutError:
            log.warning("no answer to %s %s within %ss", type, command.command_id,
                        ANSWER_TIMEOUT_S)
            return None
        finally:
            self._feed.forget(command.command_id)

    def _command(self, type: str, execution_id: str, tenant_id: str | None,
                 data: dict[str, Any]) -> Command:
        return Command(type=type, command_id=uuid.uuid4().hex, execution_id=execution_id,
                       timestamp_ms=self.clock.now_ms(), tenant_id=tenant_id, data=data)

    async def _publish(self, command: Command) -> None:
        await self.log.publish([OutRecord(
            self.topics.commands, encode_command(command),
            key=command.execution_id.encode(),
            headers=headers_for(command.type, command.version))])

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker %s: %s", self.worker_id, task.exception())


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
