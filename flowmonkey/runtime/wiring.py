"""The running parts of an engine over its log and projection: the topics, the
projector that applies the events (and answers the engine's waiters), and the
partition processors, as a consumer group's members on a log that shares partitions
among processes (``LogCapabilities.consumer_groups``) or one per partition otherwise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from flowmonkey.events.envelope import Command
from flowmonkey.handlers.base import VaultProvider
from flowmonkey.handlers.registry import (
    EngineEnv,
    FlowRegistry,
    FormRegistry,
    HandlerRegistry,
    TriggerRegistry,
)
from flowmonkey.jobs.worker import DEFAULT_CONCURRENCY, Worker
from flowmonkey.log.base import Log
from flowmonkey.log.partitioner import partition_for
from flowmonkey.log.topics import Topics
from flowmonkey.metrics import Metrics
from flowmonkey.model.form import Form
from flowmonkey.model.tables import TableDef
from flowmonkey.model.trigger import Trigger
from flowmonkey.processors.clock import Clock
from flowmonkey.processors.group import GroupProcessors
from flowmonkey.processors.partition import Appender, OnStarted, PartitionProcessor
from flowmonkey.processors.runner import StepRunner
from flowmonkey.processors.snapshots import SnapshotStore
from flowmonkey.processors.topic_checks import verify_topics
from flowmonkey.projections.base import Projection
from flowmonkey.projections.projector import OnBatch, Projector
from flowmonkey.runtime.definition_topic import Book, DefinitionTopic
from flowmonkey.runtime.flow_sync import sync_flows
from flowmonkey.runtime.form_calls import FORMS
from flowmonkey.runtime.trigger_sync import TRIGGERS

D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ProcessorSetup:
    """What the partition processors of an engine run with."""

    env: EngineEnv
    handlers: HandlerRegistry
    clock: Clock
    group: str
    timeout_ms: int
    vault: VaultProvider | None
    snapshots: SnapshotStore | None
    snapshot_every: int
    on_started: OnStarted | None = None
    """Where the processors hand the executions starts create (the engine's waiters)."""
    decoded_events: bool = True
    """Whether something in this process reads the events topic (the projector): if
    not, the processors hand the log no decoded events for it to keep."""


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """The in-process worker of an engine: ``concurrency`` None runs one only on a
    log one process owns (the embedded log) and only if some handler is stateful; 0
    never; more than 0 always, with that many jobs at once."""

    concurrency: int | None
    grace_s: float
    flows: FlowRegistry
    vault: VaultProvider | None


class Wiring:
    """Builds, starts and stops the log, projection, projector and processors of one
    engine; ``partitions`` is the commands topic's count once :meth:`open` ran."""

    def __init__(self, log_: Log, topics: Topics, projection: Projection,
                 metrics: Metrics) -> None:
        self.log = log_
        self.topics = topics
        self.projection = projection
        self.metrics = metrics
        self.partitions = 0
        self.projector: Projector | None = None
        self.group_processors: GroupProcessors | None = None
        self.static_processors: list[PartitionProcessor] = []
        self.worker: Worker | None = None
        self._make_worker: Callable[[], Worker] | None = None
        self._followers: list[asyncio.Task[None]] = []

    async def start(self, tables: Iterable[TableDef], flows: FlowRegistry, *,
                    on_events: OnBatch | None, processors: ProcessorSetup | None,
                    triggers: tuple[TriggerRegistry, Sequence[Trigger]] | None = None,
                    forms: tuple[FormRegistry, Sequence[Form]] | None = None) -> None:
        """Open the log and projection, sync ``flows`` with the flows topic,
        ``triggers`` (the registry, and the definitions given to this engine) with the
        triggers topic and ``forms`` likewise with the forms topic, then start the
        projector (with ``on_events``) and the processors, each if given."""
        await self.open(tables)
        await sync_flows(self.log, self.topics, flows)
        if triggers is not None:
            # before the processors: their env's event triggers include other processes'
            await self._follow(TRIGGERS, *triggers)
        if forms is not None:
            await self._follow(FORMS, *forms)
        if on_events is not None:
            # before the processors, so no answer to a command sent right after start
            # can slip past it
            await self.start_projector(on_events)
        if processors is not None:
            await self.start_processors(processors)

    async def _follow(self, topic: DefinitionTopic[D], book: Book[D], own: Sequence[D]
                      ) -> None:
        """Sync ``book`` with ``topic`` (publishing ``own``), and follow it: definitions
        other processes publish later are adopted as they come (read from the start
        again: re-adopting a known definition changes nothing, and this process's own
        ones were published last, so they stay the latest)."""
        await topic.sync(self.log, self.topics, book, own)
        self._followers.append(asyncio.get_running_loop().create_task(
            topic.follow(self.log, self.topics, book, 0),
            name=f"flowmonkey-{topic.what}-follower"))

    async def open(self, tables: Iterable[TableDef]) -> None:
        """Start the log (its topics created, and checked where others share them)
        and the projection (with ``tables``)."""
        await self.log.start()
        capabilities = self.log.capabilities
        await self.log.create_topics(self.topics.specs(capabilities.default_partitions))
        if capabilities.shared_topics:
            # existing topics are left as they are: refuse ones that would lose data
            await verify_topics(self.log, self.topics)
        self.partitions = await self.log.partitions_for(self.topics.commands)
        await self.projection.start()
        for table in tables:
            await self.ensure_table(table)

    async def ensure_table(self, table: TableDef) -> None:
        """Create ``table`` in the projection unless it has it."""
        if await self.projection.get_table(table.id) is None:
            await self.projection.create_table(table)

    async def start_projector(self, on_events: OnBatch) -> None:
        self.projector = Projector(self.log, self.topics.events, self.partitions,
                                   self.projection, on_events, metrics=self.metrics)
        await self.projector.start()

    async def start_processors(self, setup: ProcessorSetup) -> None:
        runner = StepRunner(setup.timeout_ms, setup.clock.now_ms, setup.vault)
        if setup.snapshots is not None:
            await setup.snapshots.start()

        def make(partition: int, writer: Appender | None = None) -> PartitionProcessor:
            processor = PartitionProcessor(partition, self.partitions, self.log, self.topics,
                                           setup.env, setup.handlers, runner, setup.clock,
                                           setup.group, writer=writer,
                                           pull_commands=writer is None,
                                           snapshots=setup.snapshots,
                                           snapshot_every=setup.snapshot_every,
                                           interleave=True,
                                           metrics=self.metrics)
            processor.route = self.expedite
            processor.on_started = setup.on_started
            processor.decoded_events = setup.decoded_events
            return processor

        if self.log.capabilities.consumer_groups:
            self.group_processors = GroupProcessors(
                self.log, self.topics.commands, setup.group, make)
            await self.group_processors.start()
            return
        self.static_processors = [make(p) for p in range(self.partitions)]
        for processor in self.static_processors:
            await processor.start()

    def expedite(self, command: Command) -> None:
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
        return self.static_processors

    async def start_worker(self, setup: WorkerSetup, handlers: HandlerRegistry,
                           clock: Clock) -> None:
        """Start the engine's own worker for its stateful handlers (see
        :class:`WorkerSetup`); after the processors, which decide its commands."""
        stateful = [h for h in handlers.all() if h.metadata.stateful]
        concurrency = setup.concurrency
        if concurrency is None:
            if self.log.capabilities.shared_topics or not stateful:
                return
            concurrency = DEFAULT_CONCURRENCY
        if concurrency == 0 or not stateful:
            return

        def make() -> Worker:
            return Worker(log=self.log, handlers=stateful, concurrency=concurrency,
                          grace_s=setup.grace_s, clock=clock, metrics=self.metrics,
                          flows=setup.flows, vault=setup.vault, close_log=False)

        self._make_worker = make
        self.worker = make()
        await self.worker.start()

    async def crash_worker(self) -> Worker:
        """Kill the worker (:meth:`Worker.kill`: nothing sent, its jobs stay claimed
        until their leases run out) and start a fresh one in its place, as a
        restarted process would be; the fresh one."""
        if self.worker is None or self._make_worker is None:
            raise RuntimeError("this engine runs no worker")
        await self.worker.kill()
        self.worker = self._make_worker()
        await self.worker.start()
        return self.worker

    async def stop_worker(self) -> None:
        """Stop the worker gracefully (before the processors, which answer its
        releases)."""
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None

    async def stop_processors(self) -> None:
        if self.group_processors is not None:
            await self.group_processors.stop()
            self.group_processors = None
        for processor in self.static_processors:
            await processor.stop()

    async def stop_projector(self) -> None:
        if self.projector is not None:
            await self.projector.stop()

    async def close(self) -> None:
        """Stop following the definition topics; close the projection, then the log."""
        followers, self._followers = self._followers, []
        for follower in followers:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await self.projection.close()
        await self.log.close()

    def processor_failure(self) -> BaseException | None:
        if self.group_processors is not None and \
                (failure := self.group_processors.failure()) is not None:
            return failure
        for processor in self.processors:
            if processor.failed is not None:
                return processor.failed
        return self.worker.failure if self.worker is not None else None

    async def settled(self) -> bool:
        """True when no command, handler or event is waiting to be processed by this
        process (see ``Engine.settled``)."""
        if self.worker is not None and not await self.worker.settled():
            return False
        for processor in self.processors:
            if not processor.idle:
                return False
            end = await self.log.end_offset(self.topics.commands, processor.partition)
            if end > processor.commands_read:
                return False
        return self.projector is None or await self.projector.caught_up()
