"""The Engine: the Python API over the log, the processors and a projection (API.md).

User calls become commands on the commands topic; answers come back as events
through the projection. Without a log and a projection the engine runs on an
embedded in-memory log and a memory projection, all in this process.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from flowmonkey.dispatcher import EventDispatcher
from flowmonkey.errors import (
    CommandRejected,
    ExecutionNotFoundError,
    FlowMonkeyError,
    FlowNotFoundError,
    FlowValidationError,
    ResumeTokenError,
    UnstorableValueError,
    WaitTimeout,
)
from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_event, encode_command, headers_for
from flowmonkey.events.envelope import Command, Event, make_event
from flowmonkey.events.partitioner import partition_for
from flowmonkey.handlers import with_builtins
from flowmonkey.handlers.base import StepHandler, VaultProvider
from flowmonkey.handlers.config_check import config_problems
from flowmonkey.handlers.subflow import SubFlowHandler
from flowmonkey.kernel.apply import replay as replay_events
from flowmonkey.kernel.decide import idempotency_scope
from flowmonkey.log.base import DEFAULT_TOPIC_PREFIX, Log, OutRecord
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.metrics import Metrics, default_metrics
from flowmonkey.model.execution import RESTING_STATUSES, Execution, ExecutionStatus
from flowmonkey.model.flow import ENGINE_HANDLER_HINT, Flow, with_more_problems
from flowmonkey.model.flow_calls import self_call_warning
from flowmonkey.model.limits import (
    DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_SUBFLOW_DEPTH,
    MAX_NESTING_LIMIT,
    ContextLimits,
    TimeoutConfig,
)
from flowmonkey.model.storable import LOG_MAX_DEPTH, UnstorableValue, check_body
from flowmonkey.model.tables import TableDef
from flowmonkey.processors.clock import Clock, SystemClock
from flowmonkey.processors.group import GroupProcessors
from flowmonkey.processors.partition import Appender, PartitionProcessor
from flowmonkey.processors.runner import StepRunner
from flowmonkey.processors.snapshots import SnapshotStore
from flowmonkey.processors.topic_checks import verify_topics
from flowmonkey.processors.topics import Topics, topics_of
from flowmonkey.projections.base import Page, Projection
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.projector import Projector
from flowmonkey.registry import EngineEnv, FlowRegistry, HandlerRegistry

log = logging.getLogger("flowmonkey.engine")

_RESOLVES = {
    n.CMD_START: {n.EXECUTION_CREATED, n.IDEMPOTENCY_HIT},
    n.CMD_RESUME: {n.EXECUTION_RESUMED},
    n.CMD_CANCEL: {n.EXECUTION_CANCELLED},
    n.CMD_REVOKE_TOKEN: {n.TOKEN_REVOKED},
}
_TOKEN_CODES = {n.REJECT_INVALID_TOKEN, n.REJECT_TOKEN_USED, n.REJECT_TOKEN_EXPIRED,
                n.REJECT_TOKEN_REVOKED}


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Options pinned on each execution this engine creates (and on its sub-flows).

    ``max_subflow_depth``: levels of sub-flow children below an execution a caller
    started (its child is level 1); a step that would start a deeper child fails with
    ``SUBFLOW_DEPTH_EXCEEDED``. ``max_children``: children one execution may start in
    its life; one more fails the step with ``CHILDREN_LIMIT_EXCEEDED``. Both failures
    take the step's failure path (retries, ``onFailure``)."""

    record_history: bool = False
    max_steps: int = 1000
    timeout_ms: int = 30_000
    context_limits: ContextLimits = field(default_factory=ContextLimits)
    max_subflow_depth: int = DEFAULT_MAX_SUBFLOW_DEPTH
    max_children: int = DEFAULT_MAX_CHILDREN

    def __post_init__(self) -> None:
        for name in ("max_subflow_depth", "max_children"):
            value = getattr(self, name)
            # a bound always applies: that is what makes self-calling flows safe to run
            if type(value) is not int or value < 0:
                raise ValueError(f"EngineOptions.{name} must be a whole number >= 0, "
                                 f"not {value!r}")
        if self.context_limits.max_depth > MAX_NESTING_LIMIT:
            raise ValueError(f"EngineOptions.context_limits.max_depth must be at most "
                             f"{MAX_NESTING_LIMIT} (deeper values cannot be written to "
                             "the log)")


@dataclass(frozen=True, slots=True)
class CreateResult:
    execution: Execution
    created: bool
    idempotency_hit: bool


@dataclass(frozen=True, slots=True)
class CancelResult:
    execution_id: str
    cancelled: bool
    tokens_invalidated: int = 0
    children_cancelled: int = 0
    reason: str | None = None


class Engine:
    """Create, resume, cancel and query executions. Use ``async with engine:``."""

    def __init__(
        self,
        flows: Iterable[Flow | Mapping[str, Any]] = (),
        handlers: Iterable[StepHandler] = (),
        options: EngineOptions | None = None,
        *,
        log: Log | None = None,
        projection: Projection | None = None,
        dispatcher: EventDispatcher | None = None,
        clock: Clock | None = None,
        tables: Iterable[TableDef] = (),
        topic_prefix: str | None = None,
        vault: VaultProvider | None = None,
        run_processors: bool = True,
        run_projector: bool = True,
        processor_group: str = "flowmonkey-processor",
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 5000,
        metrics: Metrics | None = None,
        builtin_handlers: bool = True,
    ) -> None:
        """``handlers``: the step handlers, besides the built-in ones
        (:func:`flowmonkey.handlers.builtin`: ``http``, ``delay``, ``transform``, ...)
        and ``sub-flow``, which the engine registers too; one of ``handlers`` with a
        built-in's type replaces it. ``builtin_handlers=False`` leaves the built-ins
        out (``sub-flow`` stays).

        ``run_processors``: process commands in this process. On Kafka the
        processors join the consumer group ``processor_group`` and process only the
        partitions it assigns to this instance, so several processes share the work;
        on the embedded log this process owns every partition.

        ``run_projector``: apply the events to ``projection`` in this process (needed to
        answer ``create``/``resume``/``cancel`` calls and for queries). A processor-only
        process (``flowmonkey processor``) turns it off and leaves the projection to
        ``flowmonkey projector``.

        ``snapshots``: where the processors keep snapshots of their partitions' state,
        so that recovering one (a start, a Kafka rebalance) replays only the events
        after its newest snapshot; one is saved every ``snapshot_every`` events (0:
        load only). The engine starts and closes the store.

        ``metrics``: where the processors and the projector count (Prometheus); by
        default the process-wide :func:`~flowmonkey.metrics.default_metrics`. Give an
        engine a ``Metrics()`` of its own to count it apart from others.

        ``topic_prefix``: the log names the topics (``KafkaLog(topic_prefix=...)``,
        ``EmbeddedLog(topic_prefix=...)``); without a ``log`` it is the prefix of the
        embedded log the engine makes. Given with a ``log``, it must be the log's
        (a different one raises :class:`ValueError`)."""
        self.options = options or EngineOptions()
        self.dispatcher = dispatcher
        self.clock: Clock = clock or SystemClock()
        self.log: Log = log if log is not None else EmbeddedLog(
            topic_prefix=topic_prefix if topic_prefix is not None else DEFAULT_TOPIC_PREFIX)
        self.projection: Projection = projection if projection is not None else \
            MemoryProjection(notify=self._notify)
        self.topics: Topics = topics_of(self.log, topic_prefix)
        self.handlers = HandlerRegistry(notify=self._notify)
        self.flows = FlowRegistry(notify=self._notify)
        self.env = EngineEnv(self.flows)
        self.tables: dict[str, TableDef] = {t.id: t for t in tables}
        self.vault = vault
        self.run_processors = run_processors
        self.run_projector = run_projector
        self.processor_group = processor_group
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self.metrics = metrics if metrics is not None else default_metrics()
        self.partitions = 0
        self._static_processors: list[PartitionProcessor] = []
        self.group_processors: GroupProcessors | None = None
        self.projector: Projector | None = None
        self._command_waiters: dict[str, asyncio.Future[Event]] = {}
        self._execution_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._started = False
        self._self_calls_warned: set[str] = set()
        self.builtin_handlers = builtin_handlers
        for h in with_builtins(handlers) if builtin_handlers else handlers:
            self.handlers.register(h)
        if "sub-flow" not in self.handlers:
            self.handlers.register(SubFlowHandler(
                lambda flow_id, version: self.env.flow(flow_id, version) is not None))
        for flow in flows:
            self.register_flow(flow)

    # ------------------------------------------------------------------ registration

    def register_flow(self, flow: Flow | Mapping[str, Any]) -> Flow:
        """Validate and register a flow (JSON in the original's camelCase is accepted)."""
        hint = ENGINE_HANDLER_HINT + ("" if self.builtin_handlers else
                                      "; the built-in handlers are left out "
                                      "(Engine(builtin_handlers=False))")
        try:
            parsed = flow if isinstance(flow, Flow) else Flow.parse(flow)
        except FlowValidationError as exc:  # add what only handlers and tables can tell
            salvaged = exc.salvaged
            more = config_problems(salvaged, self.handlers.all()) \
                if isinstance(salvaged, Flow) else []
            raise with_more_problems(exc, self.handlers.types(), self.tables, more,
                                     handler_hint=hint) from None
        registered = self.flows.register(
            parsed, handler_types=self.handlers.types(), tables=self.tables,
            more_problems=config_problems(parsed, self.handlers.all()), handler_hint=hint)
        self._warn_self_calls()
        return registered

    def _warn_self_calls(self) -> None:
        """Warn (once per flow) about flows that can now call themselves."""
        flows = self.flows.all()
        for flow_id in sorted({f.id for f in flows} - self._self_calls_warned):
            warning = self_call_warning(flow_id, flows, self.options.max_subflow_depth)
            if warning is not None:
                self._self_calls_warned.add(flow_id)
                log.warning("%s", warning)

    def register_handler(self, handler: StepHandler) -> None:
        self.handlers.register(handler)

    async def register_table(self, table: TableDef) -> TableDef:
        self.tables[table.id] = table
        if self._started:
            existing = await self.projection.get_table(table.id)
            if existing is None:
                await self.projection.create_table(table)
        return table

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        await self.log.start()
        capabilities = self.log.capabilities
        await self.log.create_topics(self.topics.specs(capabilities.default_partitions))
        if capabilities.shared_topics:
            # existing topics are left as they are: refuse ones that would lose data
            await verify_topics(self.log, self.topics)
        self.partitions = await self.log.partitions_for(self.topics.commands)
        await self.projection.start()
        for table in self.tables.values():
            if await self.projection.get_table(table.id) is None:
                await self.projection.create_table(table)
        await self._sync_flows()
        if self.run_projector:
            # before the processors, so no answer to a command sent right after start
            # can slip past it
            self.projector = Projector(self.log, self.topics.events, self.partitions,
                                       self.projection, self._on_events,
                                       metrics=self.metrics)
            await self.projector.start()
        if self.run_processors:
            await self._start_processors()
        self._started = True

    async def _start_processors(self) -> None:
        runner = StepRunner(self.options.timeout_ms, self.clock.now_ms, self.vault)
        if self.snapshots is not None:
            await self.snapshots.start()

        def make(partition: int, writer: Appender | None = None) -> PartitionProcessor:
            processor = PartitionProcessor(partition, self.partitions, self.log, self.topics,
                                           self.env, self.handlers, runner, self.clock,
                                           self.processor_group, writer=writer,
                                           pull_commands=writer is None,
                                           snapshots=self.snapshots,
                                           snapshot_every=self.snapshot_every,
                                           interleave=True,
                                           metrics=self.metrics)
            processor.route = self._expedite
            return processor

        if self.log.capabilities.consumer_groups:
            self.group_processors = GroupProcessors(
                self.log, self.topics.commands, self.processor_group, make)
            await self.group_processors.start()
            return
        self._static_processors = [make(p) for p in range(self.partitions)]
        for processor in self._static_processors:
            await processor.start()

    def _expedite(self, command: Command) -> None:
        """Hand a cancel to this process's processor of its partition, if it has it, to
        be decided ahead of the backlog (``PartitionProcessor.expedite``)."""
        partition = partition_for(command.execution_id.encode(), self.partitions)
        for processor in self.processors:
            if processor.partition == partition:
                processor.expedite(command)
                return

    @property
    def processors(self) -> list[PartitionProcessor]:
        """The partition processors running in this process now (on Kafka: those of
        the partitions the consumer group assigned to it)."""
        if self.group_processors is not None:
            return self.group_processors.processors
        return self._static_processors

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.group_processors is not None:
            await self.group_processors.stop()
            self.group_processors = None
        for processor in self._static_processors:
            await processor.stop()
        if self.snapshots is not None:
            await self.snapshots.close()
        if self.projector is not None:
            await self.projector.stop()
        for future in self._command_waiters.values():
            future.cancel()
        if self.dispatcher is not None:
            with contextlib.suppress(Exception):
                await self.dispatcher.flush()
        await self.projection.close()
        await self.log.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        """True between a completed ``start()`` and ``stop()``."""
        return self._started

    async def refresh_flows(self) -> None:
        """Adopt the flows published on the flows topic since this engine started (by
        another process, e.g. a processor started with newer flows)."""
        self._require_started()
        await self._sync_flows()

    async def _sync_flows(self) -> None:
        """Flow definitions live on the compacted flows topic: adopt what is there, then
        publish the ones this engine was given that the topic lacks."""
        known: set[str] = set()
        offset = 0
        while True:
            records = await self.log.read(self.topics.flows, 0, offset, 1000)
            if not records:
                break
            for record in records:
                with contextlib.suppress(FlowMonkeyError, ValueError):
                    flow = Flow.model_validate_json(record.value)
                    self.flows.adopt(flow)
                    known.add(flow.ref)
            offset = records[-1].offset + 1
        fresh = [f for f in self.flows.all() if f.ref not in known]
        if fresh:
            await self.log.append([
                OutRecord(self.topics.flows, f.model_dump_json(by_alias=True).encode(),
                          key=f.ref.encode(), partition=0) for f in fresh])

    # ------------------------------------------------------------------ events in

    def _on_events(self, events: Sequence[Event], replayed: bool = False) -> None:
        """Called by the projector after each applied batch. History replayed on start is
        not dispatched again: listeners saw it when it happened."""
        dispatcher = self.dispatcher
        emit = dispatcher.emit if dispatcher is not None and dispatcher.has_listeners \
            and not replayed else None
        waiters = self._command_waiters
        execution_waiters = self._execution_waiters
        created: dict[str, tuple[asyncio.Future[Event], Event]] = {}
        for event in events:
            if emit is not None:
                emit(event)
            if waiters and event.command_id in waiters:
                future = waiters[event.command_id]
                if event.type == n.COMMAND_REJECTED or event.type in _RESOLVES.get(
                        getattr(future, "fm_command_type", ""), ()):
                    del waiters[event.command_id]
                    if event.type == n.EXECUTION_CREATED:
                        created[event.execution_id] = (future, event)  # after the batch
                    elif not future.done():
                        future.set_result(event)
            if execution_waiters and event.execution_id in execution_waiters:
                for waiter in execution_waiters.pop(event.execution_id):
                    if not waiter.done():
                        waiter.set_result(None)
        if created:
            self._answer_creates(created, events)

    @staticmethod
    def _answer_creates(created: Mapping[str, tuple[asyncio.Future[Event], Event]],
                        events: Sequence[Event]) -> None:
        """Answer ``create`` calls with their new executions as their start left them.

        An execution created in this batch has its whole history in it (its first
        event is here), so folding the events its start decided gives the state right
        after the start, without reading the projection back (a query per create on
        PostgreSQL).
        """
        histories: dict[str, list[Event]] = {execution_id: [] for execution_id in created}
        for event in events:
            history = histories.get(event.execution_id)
            # only what the start itself decided: a first step that finished at once
            # may have moved the execution on within the same batch
            if history is not None and event.seq > 0 and \
                    event.command_id == created[event.execution_id][1].command_id:
                history.append(event)
        for execution_id, (future, answer) in created.items():
            if future.done():
                continue
            try:
                state = replay_events(histories[execution_id])
                if state is not None:
                    # (a snapshot is the caller's own: it shares nothing with the events)
                    future.fm_execution = state.to_execution()  # type: ignore[attr-defined]
            except Exception:
                # never strand a create: without the fold it reads the projection
                log.exception("could not fold the new execution %s", execution_id)
            future.set_result(answer)

    def _notify(self, type: str, payload: dict[str, Any]) -> None:
        """Store and registry events (not on the log) go to the dispatcher only."""
        if self.dispatcher is None or not self.dispatcher.has_listeners:
            return
        execution_id = str(payload.get("execution_id") or payload.get("executionId") or "")
        self.dispatcher.emit(make_event(type, execution_id, 0, self.clock.now_ms(),
                                        dict(payload), command_id=uuid.uuid4().hex))

    # ------------------------------------------------------------------ commands out

    def _require_started(self) -> None:
        if not self._started:
            raise FlowMonkeyError("the engine is not started: use `async with engine:` or "
                                  "`await engine.start()` first")

    async def _send(self, command: Command, key: str, timeout_s: float = 30.0, *,
                    urgent: bool = False) -> Event:
        """Publish a command and wait for the event that answers it. An ``urgent`` one
        (a cancel) is also handed to this process's processor, if it has the partition,
        to be decided ahead of any backlog (its copy on the log is then a duplicate)."""
        return (await self._send_for(command, key, timeout_s, urgent=urgent)).result()

    async def _send_for(self, command: Command, key: str, timeout_s: float = 30.0, *,
                        urgent: bool = False) -> asyncio.Future[Event]:
        """Publish a command; the future that its answer completed (``create`` reads
        the new execution from it too)."""
        self._require_started()
        record = OutRecord(self.topics.commands, _encoded(command), key=key.encode(),
                           headers=headers_for(command.type, command.version))
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        future.fm_command_type = command.type  # type: ignore[attr-defined]
        self._command_waiters[command.command_id] = future
        try:
            # one record needs no transaction (on Kafka, an idempotent produce is enough)
            await self.log.publish([record])
            if urgent:
                # only now: what it is decided into must never be in the log without it
                self._expedite(command)
            await asyncio.wait_for(future, timeout_s)
            return future
        except TimeoutError:
            raise WaitTimeout(
                f"no answer to {command.type} for {command.execution_id!r} within {timeout_s}s; "
                "are the processors running?") from None
        finally:
            # answered, timed out, cancelled or never published: nobody waits any more
            self._command_waiters.pop(command.command_id, None)

    def _command(self, type: str, execution_id: str, data: dict[str, Any],
                 tenant_id: str | None) -> Command:
        return Command(type=type, command_id=uuid.uuid4().hex, execution_id=execution_id,
                       timestamp_ms=self.clock.now_ms(), tenant_id=tenant_id, data=data)

    def _id_in_partition_of(self, key: str) -> str:
        """A fresh execution id that routes to the same partition as ``key``."""
        target = partition_for(key.encode(), self.partitions)
        while True:
            candidate = str(uuid.uuid4())
            if partition_for(candidate.encode(), self.partitions) == target:
                return candidate

    async def create(
        self,
        flow_id: str,
        context: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        idempotency_window_ms: int | None = None,
        tenant_id: str | None = None,
        parent_execution_id: str | None = None,
        # the execution's timeouts, named by the API contract (not this call's deadline)
        timeout: TimeoutConfig | Mapping[str, Any] | None = None,  # noqa: ASYNC109
        metadata: Mapping[str, Any] | None = None,
        flow_version: str | None = None,
        allow_unpublished: bool = False,
        execution_id: str | None = None,
    ) -> CreateResult:
        """Start an execution of ``flow_id``; with an idempotency key, a duplicate inside the
        window returns the existing execution instead."""
        self._require_started()
        if self.env.flow(flow_id, flow_version) is None and \
                self.flows.get(flow_id, flow_version, include_unpublished=True) is None:
            what = f"flow {flow_id!r}" + (f" version {flow_version!r}" if flow_version else "")
            known = ", ".join(sorted({f.id for f in self.flows.all()})) or "none"
            raise FlowNotFoundError(f"{what} is not registered (registered flows: {known})")
        if flow_version is None and (allow_unpublished or self.env.flow(flow_id) is None):
            # The kernel resolves a missing version among published flows only: pin the
            # draft/archived one, so allow_unpublished works and a refusal says why.
            unpublished = self.flows.get(flow_id, include_unpublished=True)
            if unpublished is not None:
                flow_version = unpublished.version
        if idempotency_key:
            key = idempotency_scope(tenant_id, flow_id, idempotency_key)
            new_id = execution_id or self._id_in_partition_of(key)
        else:
            new_id = execution_id or str(uuid.uuid4())
            key = new_id
        timeout_data = (timeout.model_dump(exclude_none=True) if isinstance(timeout, TimeoutConfig)
                        else TimeoutConfig.model_validate(timeout).model_dump(exclude_none=True)
                        if timeout else None)
        data: dict[str, Any] = {
            "flow_id": flow_id, "flow_version": flow_version,
            "context": dict(context or {}),
            "options": {"record_history": self.options.record_history,
                        "max_steps": self.options.max_steps,
                        "limits": self.options.context_limits.model_dump(),
                        "max_subflow_depth": self.options.max_subflow_depth,
                        "max_children": self.options.max_children},
            "idempotency_key": idempotency_key,
            "idempotency_window_ms": idempotency_window_ms,
            "parent_execution_id": parent_execution_id,
            "metadata": dict(metadata) if metadata is not None else None,
            "timeout": timeout_data or None,
            "allow_unpublished": allow_unpublished,
        }
        answered = await self._send_for(
            self._command(n.CMD_START, new_id, data, tenant_id), key)
        answer = answered.result()
        if answer.type == n.COMMAND_REJECTED:
            raise _rejection_error(answer)
        # the new execution as its batch left it; an idempotency hit reads the existing one
        execution = getattr(answered, "fm_execution", None) or \
            await self.projection.get(answer.execution_id)
        assert execution is not None
        hit = answer.type == n.IDEMPOTENCY_HIT
        return CreateResult(execution, created=not hit, idempotency_hit=hit)

    async def resume(self, execution_id: str, resume_token: str, data: Any = None, *,
                     tenant_id: str | None = None) -> Execution:
        """Resume an execution waiting for a signal; the token works once."""
        answer = await self._send(self._command(
            n.CMD_RESUME, execution_id, {"token": resume_token, "data": data}, tenant_id),
            execution_id)
        if answer.type == n.COMMAND_REJECTED:
            raise _rejection_error(answer)
        execution = await self.projection.get(execution_id)
        assert execution is not None
        return execution

    async def cancel(self, execution_id: str, source: str = "user", reason: str | None = None,
                     *, tenant_id: str | None = None) -> CancelResult:
        """Cancel a pending, running or waiting execution (and, in cascade, its children).
        Cancelling anything else changes nothing and says why in ``reason``."""
        if source not in ("user", "system", "timeout", "parent"):
            raise ValueError("source must be one of user, system, timeout, parent")
        answer = await self._send(self._command(
            n.CMD_CANCEL, execution_id, {"source": source, "reason": reason}, tenant_id),
            execution_id, urgent=True)
        if answer.type == n.COMMAND_REJECTED:
            return CancelResult(execution_id, False, reason=answer.data.get("reason"))
        return CancelResult(execution_id, True,
                            tokens_invalidated=answer.data.get("tokens_invalidated", 0),
                            children_cancelled=answer.data.get("children_cancelled", 0),
                            reason=reason)

    async def revoke_token(self, execution_id: str, token: str, reason: str | None = None, *,
                           tenant_id: str | None = None) -> None:
        answer = await self._send(self._command(
            n.CMD_REVOKE_TOKEN, execution_id, {"token": token, "reason": reason}, tenant_id),
            execution_id)
        if answer.type == n.COMMAND_REJECTED:
            raise _rejection_error(answer)

    # ------------------------------------------------------------------ queries

    async def get(self, execution_id: str, *, tenant_id: str | None = None) -> Execution | None:
        return await self.projection.get(execution_id, tenant_id=tenant_id)

    async def list(self, *, tenant_id: str | None = None,
                   status: ExecutionStatus | str | None = None, flow_id: str | None = None,
                   parent_execution_id: str | None = None, limit: int = 100,
                   cursor: str | None = None) -> Page[Execution]:
        return await self.projection.list(tenant_id=tenant_id, status=status, flow_id=flow_id,
                                          parent_execution_id=parent_execution_id, limit=limit,
                                          cursor=cursor)

    async def history(self, execution_id: str, *,
                      tenant_id: str | None = None) -> builtins.list[Event]:
        return await self.projection.history(execution_id, tenant_id=tenant_id)

    async def replay(self, execution_id: str, upto_seq: int | None = None) -> Execution | None:
        """The execution's state rebuilt from the events topic (not the projection)."""
        self._require_started()
        partition = partition_for(execution_id.encode(), self.partitions)
        events: builtins.list[Event] = []
        offset = 0
        while True:
            records = await self.log.read(self.topics.events, partition, offset, 5000)
            if not records:
                break
            for record in records:
                if record.key == execution_id.encode():
                    event = decode_event(record.value)
                    if event.seq > 0:
                        events.append(event)
            offset = records[-1].offset + 1
        state = replay_events(events, upto_seq)
        return state.to_execution() if state is not None else None

    async def wait(self, execution_id: str, timeout_s: float = 30.0, *,
                   until: Iterable[ExecutionStatus] = RESTING_STATUSES) -> Execution:
        """Return once the execution is completed, failed, cancelled or waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        wanted = frozenset(until)
        while True:
            future: asyncio.Future[None] = loop.create_future()
            self._execution_waiters.setdefault(execution_id, []).append(future)
            try:
                execution = await self.projection.get(execution_id)
                if execution is not None and execution.status in wanted:
                    return execution
                remaining = deadline - loop.time()
                if remaining <= 0:
                    status = execution.status.value if execution else "unknown"
                    raise WaitTimeout(f"execution {execution_id!r} still {status} after "
                                      f"{timeout_s}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(future, remaining)
            finally:
                self._forget_waiter(execution_id, future)

    def _forget_waiter(self, execution_id: str, future: asyncio.Future[None]) -> None:
        """Drop a finished ``wait`` iteration's future (no event may ever pop it)."""
        future.cancel()
        waiters = self._execution_waiters.get(execution_id)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters:
                del self._execution_waiters[execution_id]

    # ------------------------------------------------------------------ introspection

    def processor_failure(self) -> BaseException | None:
        if self.group_processors is not None and \
                (failure := self.group_processors.failure()) is not None:
            return failure
        for processor in self.processors:
            if processor.failed is not None:
                return processor.failed
        return None

    async def settled(self) -> bool:
        """True when no command, handler or event is waiting to be processed by this
        process (meant for the embedded log and the TestHarness: on Kafka, transaction
        markers sit past the last command, so it stays False while the topic has any)."""
        for processor in self.processors:
            if not processor.idle:
                return False
            end = await self.log.end_offset(self.topics.commands, processor.partition)
            if end > processor.commands_read:
                return False
        return self.projector is None or await self.projector.caught_up()


def _encoded(command: Command) -> bytes:
    """The command's record value; a value the log cannot carry is the caller's error,
    named by its path, and nothing is sent (the HTTP API refuses such bodies earlier)."""
    try:
        return encode_command(command)
    except (TypeError, ValueError) as exc:  # orjson's encode errors are TypeErrors
        try:
            check_body(command.data, max_depth=LOG_MAX_DEPTH)
        except UnstorableValue as found:
            raise UnstorableValueError(f"{command.type}: {found}", field=found.path) from None
        raise UnstorableValueError(f"{command.type}: a value the log cannot carry: {exc}",
                                   field="(command)") from None


def _rejection_error(event: Event) -> FlowMonkeyError:
    code = str(event.data.get("code", "COMMAND_REJECTED"))
    reason = str(event.data.get("reason", "command rejected"))
    if code == n.REJECT_FLOW_NOT_FOUND:
        return FlowNotFoundError(reason)
    if code == n.REJECT_EXECUTION_NOT_FOUND:
        return ExecutionNotFoundError(reason)
    if code in _TOKEN_CODES:
        return ResumeTokenError(reason, code=code)
    return CommandRejected(reason, code=code)
