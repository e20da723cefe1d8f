"""The Engine: the Python API over the log, the processors and a projection (API.md).

User calls become commands on the commands topic; answers come back as events
through the projection. Without a log and a projection the engine runs on an
embedded in-memory log and a memory projection, all in this process.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from flowmonkey.errors import FlowMonkeyError, ResumeTokenError, WaitTimeout
from flowmonkey.events import names as n
from flowmonkey.events.dispatcher import EventDispatcher
from flowmonkey.events.envelope import Command, Event, make_event
from flowmonkey.handlers.base import StepHandler, VaultProvider
from flowmonkey.handlers.registry import (
    EngineEnv,
    FlowRegistry,
    FormRegistry,
    HandlerRegistry,
    TriggerRegistry,
)
from flowmonkey.jobs.worker import Worker
from flowmonkey.kernel.ids import follow_up_command_id
from flowmonkey.log.base import DEFAULT_TOPIC_PREFIX, Log
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.topics import Topics, topics_of
from flowmonkey.metrics import Metrics, default_metrics
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.model.flow import Flow
from flowmonkey.model.form import Form, token_execution_id
from flowmonkey.model.form import entity_id as form_entity_id
from flowmonkey.model.limits import (
    DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_SUBFLOW_DEPTH,
    MAX_NESTING_LIMIT,
    ContextLimits,
    TimeoutConfig,
)
from flowmonkey.model.tables import TableDef
from flowmonkey.model.trigger import Trigger, entity_id
from flowmonkey.processors.clock import Clock, SystemClock
from flowmonkey.processors.group import GroupProcessors
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.snapshots import SnapshotStore
from flowmonkey.projections.base import Page, Projection
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.projector import Projector
from flowmonkey.runtime.commands import (
    command_record,
    raise_if_rejected,
    rejection_error,
    start_data,
    start_route,
)
from flowmonkey.runtime.flow_sync import sync_flows
from flowmonkey.runtime.form_calls import (
    FORMS,
    FormAnswer,
    checked_form,
    form_answer,
    submit_data,
)
from flowmonkey.runtime.form_calls import adopt_all as adopt_all_forms
from flowmonkey.runtime.form_calls import register_commands as form_register_commands
from flowmonkey.runtime.registration import FlowIntake, register_handlers, version_to_start
from flowmonkey.runtime.replay import replay_execution
from flowmonkey.runtime.trigger_calls import (
    adopt_all,
    changed,
    checked_trigger,
    fired_execution,
    register_commands,
)
from flowmonkey.runtime.trigger_sync import publish_triggers, read_published
from flowmonkey.runtime.waiters import Answer, Waiters
from flowmonkey.runtime.wiring import ProcessorSetup, Wiring, WorkerSetup


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

    def pinned(self) -> dict[str, Any]:
        """What a start command pins on its execution."""
        return {"record_history": self.record_history, "max_steps": self.max_steps,
                "limits": self.context_limits.model_dump(),
                "max_subflow_depth": self.max_subflow_depth,
                "max_children": self.max_children}


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
        workers: int | None = None,
        worker_grace_s: float = 10.0,
        triggers: Iterable[Trigger | Mapping[str, Any]] = (),
        forms: Iterable[Form | Mapping[str, Any]] = (),
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
        (a different one raises :class:`ValueError`).

        ``workers``: run stateful handlers' jobs in this process, that many at once
        (:class:`~flowmonkey.jobs.Worker`). By default (None) an engine that runs its
        processors on a log it owns (the embedded log) does so whenever it has a
        stateful handler, so jobs work with zero setup; on Kafka ``flowmonkey worker``
        runs them. 0 never runs them here. ``worker_grace_s``: how long ``stop()``
        lets running jobs finish before releasing them to other workers.

        ``triggers``: definitions (:class:`~flowmonkey.model.trigger.Trigger`, or their
        camelCase JSON) of what starts executions without code. The engine knows them
        (its processors turn events into event triggers' fires) and, on ``start``,
        sends each a ``trigger.register`` (decided only when new or changed; a paused
        trigger stays paused).

        ``forms``: public form definitions (:class:`~flowmonkey.model.form.Form`, or
        their camelCase JSON), checked (their JSON Schema against the meta-schema, its
        patterns with RE2) and, on ``start``, each sent a ``form.register``; then
        :meth:`submit_form` decides their submissions."""
        if workers is not None and (type(workers) is not int or workers < 0):
            raise ValueError(f"Engine workers must be None or a whole number >= 0, "
                             f"not {workers!r}")
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
        self.triggers = TriggerRegistry()
        self.env = EngineEnv(self.flows, self.triggers)
        adopt_all(self.triggers, triggers)
        self.forms = FormRegistry()
        adopt_all_forms(self.forms, forms)
        self.tables: dict[str, TableDef] = {t.id: t for t in tables}
        self.vault = vault
        self.run_processors = run_processors
        self.run_projector = run_projector
        self.processor_group = processor_group
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self.metrics = metrics if metrics is not None else default_metrics()
        self.workers = workers
        self.worker_grace_s = worker_grace_s
        self._wiring = Wiring(self.log, self.topics, self.projection, self.metrics)
        self._waiters = Waiters()
        self._started = False
        self.builtin_handlers = builtin_handlers
        register_handlers(self.handlers, handlers, self.env,
                          builtin_handlers=builtin_handlers)
        self._intake = FlowIntake(self.flows, self.handlers, self.tables,
                                  builtin_handlers=builtin_handlers,
                                  max_subflow_depth=self.options.max_subflow_depth)
        for flow in flows:
            self.register_flow(flow)

    # ------------------------------------------------------------------ registration

    def register_flow(self, flow: Flow | Mapping[str, Any]) -> Flow:
        """Validate and register a flow (camelCase JSON, as flows are written, is accepted)."""
        return self._intake.register(flow)

    def register_handler(self, handler: StepHandler) -> None:
        self.handlers.register(handler)

    async def register_table(self, table: TableDef) -> TableDef:
        self.tables[table.id] = table
        if self._started:
            await self._wiring.ensure_table(table)
        return table

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        own = self.triggers.all()  # given to this engine; the topic's others are adopted
        own_forms = self.forms.all()
        await self._wiring.start(
            self.tables.values(), self.flows,
            on_events=self._on_events if self.run_projector else None,
            processors=ProcessorSetup(
                self.env, self.handlers, self.clock, self.processor_group,
                self.options.timeout_ms, self.vault, self.snapshots, self.snapshot_every,
                # with the projector here too, its answers take what the processors decided
                on_started=self._waiters.started if self.run_projector else None,
                decoded_events=self.run_projector,
            ) if self.run_processors else None,
            triggers=(self.triggers, own), forms=(self.forms, own_forms))
        if self.run_processors:
            await self._wiring.start_worker(
                WorkerSetup(self.workers, self.worker_grace_s, self.flows, self.vault),
                self.handlers, self.clock)
        self._started = True
        if own:
            # published in order before anything sent after start: each trigger's
            # partition decides its registration before any later command about it
            await self.log.publish(register_commands(
                self.topics.commands, own, self.clock.now_ms(), "engine"))
        if own_forms:
            await self.log.publish(form_register_commands(
                self.topics.commands, own_forms, self.clock.now_ms(), "engine"))

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self._wiring.stop_worker()
        await self._wiring.stop_processors()
        if self.snapshots is not None:
            await self.snapshots.close()
        await self._wiring.stop_projector()
        self._waiters.cancel_all()
        if self.dispatcher is not None:
            with contextlib.suppress(Exception):
                await self.dispatcher.flush()
        await self._wiring.close()

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
        await sync_flows(self.log, self.topics, self.flows)

    async def refresh_triggers(self) -> None:
        """Adopt the trigger definitions published on the triggers topic since this
        engine started (by another process's engine)."""
        self._require_started()
        for trigger in (await read_published(self.log, self.topics)).values():
            self.triggers.adopt(trigger)

    def _on_events(self, events: Sequence[Event], replayed: bool = False) -> None:
        """Called by the projector after each applied batch. History replayed on start is
        not dispatched again: listeners saw it when it happened."""
        dispatcher = self.dispatcher
        emit = dispatcher.emit if dispatcher is not None and dispatcher.has_listeners \
            and not replayed else None
        self._waiters.on_events(events, emit)

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

    async def _send(self, type: str, execution_id: str, data: dict[str, Any],
                    tenant_id: str | None, *, key: str | None = None,
                    urgent: bool = False) -> Answer:
        """Publish a command (routed by ``key``, default the execution id) and wait for
        the answer. An ``urgent`` one (a cancel) is also handed to this process's
        processor, if it has the partition, to be decided ahead of any backlog (its
        copy on the log is then a duplicate)."""
        self._require_started()
        command = self._command(type, execution_id, data, tenant_id)
        record = command_record(self.topics.commands, command, key or execution_id)
        return await self._waiters.send(self.log, record, command, timeout_s=30.0,
                                        expedite=self._wiring.expedite if urgent else None)

    def _command(self, type: str, execution_id: str, data: dict[str, Any],
                 tenant_id: str | None) -> Command:
        return Command(type=type, command_id=uuid.uuid4().hex, execution_id=execution_id,
                       timestamp_ms=self.clock.now_ms(), tenant_id=tenant_id, data=data)

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
        flow_version = version_to_start(self.flows, self.env, flow_id, flow_version,
                                        allow_unpublished=allow_unpublished)
        new_id, key = start_route(execution_id, idempotency_key, tenant_id, flow_id,
                                  self.partitions)
        data = start_data(
            flow_id, flow_version, context, self.options.pinned(),
            idempotency_key=idempotency_key, idempotency_window_ms=idempotency_window_ms,
            parent_execution_id=parent_execution_id, metadata=metadata, timeout=timeout,
            allow_unpublished=allow_unpublished)
        answered = await self._send(n.CMD_START, new_id, data, tenant_id, key=key)
        answer = raise_if_rejected(answered.event())
        # the new execution as its batch left it; an idempotency hit reads the existing one
        execution = answered.execution or await self.projection.get(answer.execution_id)
        assert execution is not None
        hit = answer.type == n.IDEMPOTENCY_HIT
        return CreateResult(execution, created=not hit, idempotency_hit=hit)

    async def resume(self, execution_id: str, resume_token: str, data: Any = None, *,
                     tenant_id: str | None = None,
                     email: Mapping[str, str | None] | None = None) -> Execution:
        """Resume an execution waiting for a signal; the token works once. ``email``
        (``{from, subject}``): the resume answers an inbound email (a reply to an
        ``email-reply`` step's mail), recorded as ``email.received``."""
        command: dict[str, Any] = {"token": resume_token, "data": data}
        if email is not None:
            command["email"] = dict(email)
        raise_if_rejected((await self._send(
            n.CMD_RESUME, execution_id, command, tenant_id)).event())
        execution = await self.projection.get(execution_id)
        assert execution is not None
        return execution

    async def cancel(self, execution_id: str, source: str = "user", reason: str | None = None,
                     *, tenant_id: str | None = None) -> CancelResult:
        """Cancel a pending, running or waiting execution (and, in cascade, its children).
        Cancelling anything else changes nothing and says why in ``reason``."""
        if source not in ("user", "system", "timeout", "parent"):
            raise ValueError("source must be one of user, system, timeout, parent")
        answer = (await self._send(n.CMD_CANCEL, execution_id,
                                   {"source": source, "reason": reason}, tenant_id,
                                   urgent=True)).event()
        if answer.type == n.COMMAND_REJECTED:
            return CancelResult(execution_id, False, reason=answer.data.get("reason"))
        return CancelResult(execution_id, True,
                            tokens_invalidated=answer.data.get("tokens_invalidated", 0),
                            children_cancelled=answer.data.get("children_cancelled", 0),
                            reason=reason)

    async def revoke_token(self, execution_id: str, token: str, reason: str | None = None, *,
                           tenant_id: str | None = None) -> None:
        raise_if_rejected((await self._send(
            n.CMD_REVOKE_TOKEN, execution_id, {"token": token, "reason": reason},
            tenant_id)).event())

    # ------------------------------------------------------------------ triggers

    async def register_trigger(self, trigger: Trigger | Mapping[str, Any], *,
                               by: str | None = None) -> Trigger:
        """Know a trigger (new, or a changed definition of a known one) and, once
        started, send its ``trigger.register``."""
        model = checked_trigger(trigger)
        self.triggers.adopt(model)
        if self._started:
            await publish_triggers(self.log, self.topics, [model])
            await self.log.publish(register_commands(
                self.topics.commands, [model], self.clock.now_ms(), by))
        return model

    async def pause_trigger(self, trigger_id: str, *, by: str | None = None,
                            reason: str | None = None, tenant_id: str | None = None) -> bool:
        """Disable a trigger (recorded with ``by`` and ``reason``). False if it was
        disabled already; ``TRIGGER_NOT_FOUND`` if it is not registered."""
        return changed((await self._send(n.CMD_TRIGGER_DISABLE, entity_id(trigger_id),
                                         {"by": by, "reason": reason}, tenant_id)).event())

    async def resume_trigger(self, trigger_id: str, *, by: str | None = None,
                             reason: str | None = None, tenant_id: str | None = None) -> bool:
        """Enable a trigger again; a schedule's next tick is the first after now (the
        ticks missed while paused are not caught up). False if it was enabled already."""
        return changed((await self._send(n.CMD_TRIGGER_ENABLE, entity_id(trigger_id),
                                         {"by": by, "reason": reason}, tenant_id)).event())

    async def fire_trigger(self, trigger_id: str, arrival: Mapping[str, Any] | None = None,
                           source_key: str | None = None, *, kind: str = "manual",
                           tenant_id: str | None = None) -> str:
        """Fire a trigger with ``arrival`` (the document its context and idempotency
        key select from) and return the id of the execution it starts. The same
        ``source_key`` (a delivery id) always gives the same execution, started once
        (without one, each call is a new source). Raises CommandRejected with the
        ``trigger.failed`` code (``TRIGGER_DISABLED``, ``MAPPING_ERROR``) or the
        rejection's (``TRIGGER_NOT_FOUND``)."""
        data = {"source": {"kind": kind, "key": source_key or uuid.uuid4().hex},
                "arrival": dict(arrival or {})}
        return fired_execution((await self._send(n.CMD_TRIGGER_FIRE, entity_id(trigger_id),
                                                 data, tenant_id)).event())

    # ------------------------------------------------------------------ forms

    async def register_form(self, form: Form | Mapping[str, Any], *,
                            by: str | None = None) -> Form:
        """Know a form (new, or a changed definition of a known one) and, once
        started, send its ``form.register`` (refused with every problem named:
        :class:`~flowmonkey.errors.RegistrationError`)."""
        model = checked_form(form)
        self.forms.adopt(model)
        if self._started:
            await FORMS.publish(self.log, self.topics, [model])
            await self.log.publish(form_register_commands(
                self.topics.commands, [model], self.clock.now_ms(), by))
        return model

    async def submit_form(self, form_id: str, data: Mapping[str, Any] | None, *,
                          address: str | None, verdict: str = "valid",
                          errors: Iterable[Mapping[str, Any]] | None = None,
                          token: str | None = None, execution_id: str | None = None,
                          submission_id: str | None = None,
                          tenant_id: str | None = None) -> FormAnswer:
        """Have the form's partition decide one submission and return what became of
        it (:class:`~flowmonkey.runtime.form_calls.FormAnswer`): accepted (its
        execution started), or refused (disabled, rate-limited, a duplicate of an
        earlier one, or recorded as ``verdict``: ``invalid`` with its ``errors``,
        ``spam``, ``captcha_failed``). ``data`` is the sanitised, validated data;
        ``address`` the client's (only a keyed hash of it is kept).

        With ``token`` (a ``form-submit`` step's resume token; its execution is read
        from it, or given as ``execution_id``), an accepted submission resumes that
        execution with ``data``, and this waits for the resume too: a token that is
        not good raises its error (:class:`~flowmonkey.errors.ResumeTokenError`,
        ``ExecutionNotFoundError``; the submission stays recorded, its id in the
        error's ``details``). An unknown form raises ``CommandRejected`` with code
        ``FORM_NOT_FOUND``."""
        self._require_started()
        if token is not None and execution_id is None:
            execution_id = token_execution_id(token)
            if execution_id is None:
                raise ResumeTokenError("the token is not a form step's resume token",
                                       code=n.REJECT_INVALID_TOKEN)
        data_out = submit_data(form_id, data, address=address, verdict=verdict,
                               errors=errors, token=token, execution_id=execution_id,
                               submission_id=submission_id)
        command = self._command(n.CMD_FORM_SUBMIT, form_entity_id(form_id), data_out,
                                tenant_id)
        record = command_record(self.topics.commands, command, command.execution_id)
        resume_id = follow_up_command_id(command.command_id, n.CMD_RESUME, execution_id) \
            if token is not None and execution_id is not None else None
        resume = self._waiters.expect(resume_id, n.CMD_RESUME) if resume_id else None
        try:
            answered = await self._waiters.send(self.log, record, command, timeout_s=30.0)
            answer = form_answer(answered.event(), data_out["submission_id"])
            if resume is not None and answer.accepted:
                try:
                    resumed = await asyncio.wait_for(resume.future, 30.0)
                except TimeoutError:
                    raise WaitTimeout(f"no answer to the resume of {execution_id!r} by "
                                      f"submission {answer.submission_id!r} within 30s") \
                        from None
                if resumed.type == n.COMMAND_REJECTED:
                    error = rejection_error(resumed)
                    error.details["submission_id"] = answer.submission_id
                    raise error
            return answer
        finally:
            if resume_id is not None:
                self._waiters.drop(resume_id)

    # ------------------------------------------------------------------ queries

    async def get(self, execution_id: str, *, tenant_id: str | None = None) -> Execution | None:
        return await self.projection.get(execution_id, tenant_id=tenant_id)

    async def list(self, *, tenant_id: str | None = None,
                   status: ExecutionStatus | str | None = None, flow_id: str | None = None,
                   parent_execution_id: str | None = None, limit: int = 100,
                   cursor: str | None = None, flow_version: str | None = None,
                   created_from_ms: int | None = None, created_before_ms: int | None = None,
                   idempotency_key: str | None = None) -> Page[Execution]:
        """Executions newest first, filtered (see ``Projection.list``)."""
        return await self.projection.list(tenant_id=tenant_id, status=status, flow_id=flow_id,
                                          parent_execution_id=parent_execution_id, limit=limit,
                                          cursor=cursor, flow_version=flow_version,
                                          created_from_ms=created_from_ms,
                                          created_before_ms=created_before_ms,
                                          idempotency_key=idempotency_key)

    async def count_by_status(self, *, tenant_id: str | None = None,
                              flow_id: str | None = None, flow_version: str | None = None,
                              parent_execution_id: str | None = None,
                              created_from_ms: int | None = None,
                              created_before_ms: int | None = None) -> dict[str, int]:
        """How many executions have each status under the filters, each count capped
        (``projections.base.COUNT_CAP``: a count equal to it means at least that)."""
        return await self.projection.count_by_status(
            tenant_id=tenant_id, flow_id=flow_id, flow_version=flow_version,
            parent_execution_id=parent_execution_id, created_from_ms=created_from_ms,
            created_before_ms=created_before_ms)

    async def history(self, execution_id: str, *, tenant_id: str | None = None,
                      after_seq: int = 0, limit: int | None = None) -> builtins.list[Event]:
        """The execution's events in seq order (a page: after ``after_seq``, at most
        ``limit``)."""
        return await self.projection.history(execution_id, tenant_id=tenant_id,
                                             after_seq=after_seq, limit=limit)

    async def replay(self, execution_id: str, upto_seq: int | None = None) -> Execution | None:
        """The execution's state rebuilt from the events topic (not the projection)."""
        self._require_started()
        return await replay_execution(self.log, self.topics.events, self.partitions,
                                      execution_id, upto_seq)

    async def wait(self, execution_id: str, timeout_s: float = 30.0, *,
                   until: Iterable[ExecutionStatus] | None = None) -> Execution:
        """Return once the execution is done or needs someone: completed, failed,
        cancelled, or waiting for anything but a job (a worker runs a job, and it ends
        by itself). With ``until``, once its status is one of those (``WAITING`` then
        includes waiting on a job)."""
        return await self._waiters.wait(execution_id, self.projection.get, timeout_s, until)

    # ------------------------------------------------------------------ introspection

    @property
    def partitions(self) -> int:
        """The commands topic's partition count (0 before ``start``)."""
        return self._wiring.partitions

    @property
    def projector(self) -> Projector | None:
        """The projector applying the events in this process (``run_projector``)."""
        return self._wiring.projector

    @property
    def group_processors(self) -> GroupProcessors | None:
        """This process's member of the processors' consumer group, on a log that has
        them (Kafka)."""
        return self._wiring.group_processors

    @property
    def processors(self) -> builtins.list[PartitionProcessor]:
        """The partition processors running in this process now (on Kafka: those of
        the partitions the consumer group assigned to it)."""
        return self._wiring.processors

    @property
    def worker(self) -> Worker | None:
        """The worker running stateful handlers' jobs in this process, if any
        (``workers``)."""
        return self._wiring.worker

    def processor_failure(self) -> BaseException | None:
        return self._wiring.processor_failure()

    async def settled(self) -> bool:
        """True when no command, handler or event is waiting to be processed by this
        process (meant for the embedded log and the TestHarness: on Kafka, transaction
        markers sit past the last command, so it stays False while the topic has any)."""
        return await self._wiring.settled()
