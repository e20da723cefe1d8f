"""One partition's processor: commands in, events out, state in memory.

Three inputs share one inbox: command records from the log, handler results and due
timers. Each batch is decided, its events (and follow-up commands, and any
dead-lettered records) are appended in ONE log append together with the commands'
offsets, and only then are effects started (handlers, timers). The ordering matters:

1. decide + adopt into memory      — a crash here loses nothing: nothing was acknowledged
2. start handlers / timers          — effects of decisions not yet in the log
3. append(events, follow-ups, offsets) atomically — the commit point

Appends are pipelined: a committer task appends the decided batches in order while the
loop decides the next ones, and batches that queue up while an append is in flight go
out together in the next one (group commit). So a step does not wait for the log's
commit latency (a Kafka transaction, an fsync) before its handler starts, and the
commit cost is shared by everything decided meanwhile. Nothing is acknowledged before
its append: clients see events only once they are in the log, and no other partition
acts on a batch's follow-ups before it: the cancels a batch sends to children are
handed to their processors in this process (``route``) only once it is appended. If an
append fails, the processor stops: its memory holds decisions the log does not, so its
owner rebuilds it from the log. A handler started for a decision that never reached the log
runs again after recovery with the same ``attempt_id`` (at-least-once side effects, as
after a crash between a side effect and the commit).

No command can stop the partition: whatever deciding, applying or encoding one command
raises, that command alone is rejected with ``INTERNAL_ERROR`` (its records taken back,
its states not adopted) and the batch goes on (``_reject_poisoned``).

Recovery replays the partition's events into state, then reads commands from the
committed offset; commands whose events were already written are recognised by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flowmonkey.errors import DecodeError
from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_command, event_record
from flowmonkey.events.envelope import Command, Event, trusted_command
from flowmonkey.handlers.registry import HandlerRegistry
from flowmonkey.kernel.apply import adopt
from flowmonkey.kernel.command_checks import MAX_ID_CHARS
from flowmonkey.kernel.decide import Decision, decide
from flowmonkey.kernel.env import KernelEnv
from flowmonkey.kernel.state import ExecutionState, PartitionState
from flowmonkey.kernel.timers import next_timer
from flowmonkey.kernel.trigger_state import TriggerState
from flowmonkey.kernel.triggers import trigger_timers_for
from flowmonkey.log.base import Log, OutRecord, Position, Record
from flowmonkey.log.topics import Topics
from flowmonkey.metrics import Metrics, default_metrics
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.processors.clock import Clock
from flowmonkey.processors.early_cancels import EarlyCancels
from flowmonkey.processors.intake import command_refusal
from flowmonkey.processors.internal_errors import (
    ATTEMPT_ANSWERS,
    internal_error_follow_up,
    internal_error_reason,
    internal_error_rejection,
    parent_reports,
)
from flowmonkey.processors.jobs import (
    count_job_events,
    job_create_command,
    job_view_records,
    refused_job_view,
)
from flowmonkey.processors.records import (
    command_record,
    dead_letter_record,
    internal_dead_letter_record,
)
from flowmonkey.processors.replay import replay_events
from flowmonkey.processors.runner import StepRunner
from flowmonkey.processors.snapshots import SnapshotStore
from flowmonkey.processors.snapshotter import Snapshotter
from flowmonkey.processors.timer_heap import TimerHeap

log = logging.getLogger("flowmonkey.processor")

_MAX_UNSENT_RECORDS = 20_000  # decided but not yet appended: past this, deciding waits
_STOP_FLUSH_S = 10.0  # how long a stop waits for decided batches to reach the log

Input = Record | Command

OnStarted = Callable[[str, list[Event], ExecutionState], None]
"""Takes a start command's id, the events it decided about the execution it created,
and the state they leave that execution in (see ``PartitionProcessor.on_started``)."""


class Appender(Protocol):
    """Where a batch's outputs go: the log itself, or (on Kafka) the partition's own
    transactional writer, whose id fences any older owner of the partition."""

    async def append(
        self,
        records: Sequence[OutRecord],
        *,
        commit_group: str | None = None,
        commit_offsets: Mapping[tuple[str, int], int] | None = None,
    ) -> list[Position]: ...


@dataclass(slots=True)
class _InFlight:
    attempt_id: str
    task: asyncio.Task[None]
    abort: asyncio.Event


class PartitionProcessor:
    def __init__(
        self,
        partition: int,
        partitions: int,
        log_: Log,
        topics: Topics,
        env: KernelEnv,
        handlers: HandlerRegistry,
        runner: StepRunner,
        clock: Clock,
        group: str,
        *,
        max_batch: int = 1024,
        max_in_flight: int = 20_000,
        writer: Appender | None = None,
        pull_commands: bool = True,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 5000,
        interleave: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        """``writer`` takes the batches' appends (default: ``log_``). With
        ``pull_commands=False`` the processor does not read the commands topic itself;
        its owner pushes command records in with :meth:`feed` (a consumer-group member
        does, so Kafka's group decides who processes a partition).

        With ``snapshots``, recovery starts from the partition's newest snapshot and
        replays only the events after it; a snapshot is saved in the background once
        ``snapshot_every`` events (or, if it holds more, as many as the partition holds
        executions) were appended since the last; 0 turns saving off.

        With ``interleave`` (the engine sets it), the processor lets the event loop run
        between two batches of a backlog, so the log's I/O (the transaction in flight,
        fetches) and the other partitions move on while the rest is decided. On Kafka
        that puts more decided commands in each transaction (docs/performance.md). On
        the embedded log it matters since handlers that finish without waiting queue
        their results during the batch: without it a partition would run its
        executions to their ends before its appender or any other partition had a turn.

        ``metrics``: where the partition counts (default: :func:`default_metrics`)."""
        self.partition = partition
        self.partitions = partitions
        self.log = log_
        self.topics = topics
        self.env = env
        self.handlers = handlers
        self.runner = runner
        self.clock = clock
        self.group = group
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.writer: Appender = writer if writer is not None else log_
        self.pull_commands = pull_commands
        self.interleave = interleave
        self.state = PartitionState()
        self.in_flight: dict[str, _InFlight] = {}
        self.timers = TimerHeap(clock, self._fire)
        self._inbox: deque[Input] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._batch_lock = asyncio.Lock()  # held while a batch is decided
        # attempts whose result is queued but not decided yet: not to be started again
        # by a batch that touches the execution first (a batch boundary between another
        # command and the result would otherwise run the handler twice)
        self._answered: set[str] = set()
        # executions whose handler or timer command the engine failed on: nothing is
        # re-armed for them until a command about them is decided (see _reject_poisoned)
        self._stuck: set[str] = set()
        # cancels handed over in this process ahead of their copy on the log (see
        # expedite), and those among them whose execution is not started yet
        self._urgent: deque[Command] = deque()
        self._early_cancels = EarlyCancels()
        #: where this processor hands the cancels it sends to children, to be decided
        #: at once by the processor of their partition in this process (set by its owner);
        #: called by the committer once the batch that sends them is in the log
        self.route: Callable[[Command], None] | None = None
        #: where this processor hands each execution a start command created, with the
        #: start's events and the state they leave it in, once decided (set by its
        #: owner): the engine answers ``create`` from it instead of folding the events
        #: again. A hint only: the answer still comes from the log through the projector.
        self.on_started: OnStarted | None = None
        #: whether a reader in this process takes the events this processor appends
        #: (its owner clears it when none does): only then are their objects attached
        #: for a log that keeps them (flowmonkey.log.decoded), which would hold them
        #: unread otherwise
        self.decoded_events = True
        # decided batches waiting for the committer: (records, commands offset or None,
        # events among the records, cancels to route once they are appended)
        self._unsent: list[tuple[list[OutRecord], int | None, int, list[Command]]] = []
        self._unsent_records = 0
        self._commit_wake = asyncio.Event()
        self._drained = asyncio.Event()  # set whenever nothing is left to append
        self._drained.set()
        self.commands_offset = 0
        self.commands_read = 0
        self.events_offset = 0  # as of recovery; kept up to date with snapshots on
        self.events_replayed = 0  # records the last recovery read after its snapshot
        self.snapshotter = Snapshotter(snapshots, topics.events, partition, snapshot_every) \
            if snapshots is not None and snapshot_every > 0 else None
        self.failed: BaseException | None = None
        self.metrics = metrics if metrics is not None else default_metrics()
        self._owned = False  # counted in partitions_owned
        # handler outcomes since the last batch: counted with it, not one by one
        self._outcomes: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.recover()
        self.metrics.partitions_owned.inc()
        self._owned = True
        self._tasks = [asyncio.create_task(self._loop(), name=f"fm-processor-{self.partition}"),
                       asyncio.create_task(self._commit_loop(),
                                           name=f"fm-committer-{self.partition}")]
        if self.pull_commands:
            self._tasks.append(asyncio.create_task(
                self._read_commands(), name=f"fm-commands-{self.partition}"))

    async def stop(self) -> None:
        """Stop after the batch in progress (its append commits or fails whole), then
        abort in-flight handlers and drop timers: whoever processes the partition next
        re-runs them from the log, with the same ``attempt_id``."""
        async with self._batch_lock:
            if self.failed is None:
                # what was decided goes to the log, so the next owner need not redo it
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_STOP_FLUSH_S):
                        await self._drained.wait()
            for task in self._tasks:
                task.cancel()
        for flight in list(self.in_flight.values()):
            flight.abort.set()
            flight.task.cancel()
        self.timers.clear()
        tasks = self._tasks + [f.task for f in self.in_flight.values()]
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.in_flight.clear()
        self.timers.clear()
        if self.snapshotter is not None:
            await self.snapshotter.close()
        if self._owned:
            self._owned = False
            self.metrics.partition_released(self.partition)

    async def recover(self) -> None:
        """Rebuild state from this partition's events, then re-arm handlers and timers."""
        started = time.perf_counter()
        offset = 0
        if self.snapshotter is not None:
            restored = await self.snapshotter.restore(self.log)
            if restored is not None:
                self.state, offset = restored
        offset, replayed = await replay_events(self.log, self.topics.events, self.partition,
                                               self.state, offset)
        self.events_offset = offset
        self.events_replayed = replayed
        if self.snapshotter is not None:
            self.snapshotter.recovered(offset)
        committed = await self.log.committed(self.group, self.topics.commands, self.partition)
        self.commands_offset = committed or 0
        self.commands_read = self.commands_offset
        for state in self.state.executions.values():
            self._arm(state)
        for trigger in self.state.triggers.values():
            self._arm_trigger(trigger)
        self.metrics.recovery_seconds.observe(time.perf_counter() - started)

    # ------------------------------------------------------------------ inputs

    def submit(self, command: Command) -> None:
        """An internal command (handler result, timer) for this partition."""
        self._inbox.append(command)
        self._wake.set()

    @property
    def loop_task(self) -> asyncio.Task[None] | None:
        """The batch loop's task once started; it ends with the error that stopped the
        partition (``failed``), so an owner can react to a failed append."""
        return self._tasks[0] if self._tasks else None

    def expedite(self, command: Command) -> None:
        """A cancel to decide before the backlog (its copy on the log, already appended
        or in the same append as what caused it, is then a duplicate, ignored by id).

        A tree of executions that calls itself grows a backlog of starts on every
        partition; a cancel waiting behind it lets the tree grow for as long as the
        backlog lasts. Decided first, a cancel stops each execution it reaches at once;
        one for an execution whose start is still in the backlog waits for that start
        and is decided right after it, before its first handler runs. If this process
        dies first, the copy on the log is decided instead: nothing depends on it.

        Only a command already in the log may be expedited (the engine publishes a
        user's cancel first; a batch's cascade cancels are routed once it committed):
        its effects must never be in the log without their cause. An early one is
        dropped once its copy on the log is decided (that decision, in log order, is
        the one that counts), or after ``EARLY_CANCEL_TTL_MS`` (``early_cancels.py``)."""
        self._urgent.append(command)
        self._wake.set()

    def feed(self, records: Sequence[Record]) -> None:
        """Command records for this partition, in offset order (``pull_commands=False``)."""
        if records:
            self._inbox.extend(records)
            self.commands_read = records[-1].offset + 1
            self._wake.set()

    @property
    def has_room(self) -> bool:
        """False while in-flight handlers or queued inputs are at their bounds: the
        feeder should pause this partition until work drains (backpressure)."""
        return len(self.in_flight) < self.max_in_flight and \
            len(self._inbox) < 4 * self.max_batch

    @property
    def idle(self) -> bool:
        return not self._inbox and not self._urgent and not self.in_flight and \
            self._drained.is_set()

    async def _read_commands(self) -> None:
        offset = self.commands_offset
        topic = self.topics.commands
        while True:
            while not self.has_room:
                # Backpressure: stop pulling new commands until work drains.
                self._room.clear()
                await self._room.wait()
            records = await self.log.read(topic, self.partition, offset, self.max_batch)
            if not records:
                await self.log.wait_for(topic, self.partition, offset, 1.0)
                continue
            self._inbox.extend(records)
            offset = records[-1].offset + 1
            self.commands_read = offset
            self._wake.set()

    async def _loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._inbox or self._urgent:
                    if self.failed is not None:
                        raise self.failed
                    if self._unsent_records >= _MAX_UNSENT_RECORDS:
                        await self._drained.wait()  # backpressure from the log
                    async with self._batch_lock:
                        self._process_batch()
                    self._room.set()
                    if self.interleave and self._inbox:
                        await asyncio.sleep(0)
                if self.failed is not None:
                    raise self.failed
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the partition stops; the engine reports it
            self.failed = exc
            log.exception("processor for partition %d stopped", self.partition)
            raise

    # ------------------------------------------------------------------ the batch

    async def _commit_loop(self) -> None:
        """Append decided batches in order; everything queued meanwhile goes in one."""
        topic, partition = self.topics.commands, self.partition
        snapshotter = self.snapshotter
        metrics = self.metrics
        try:
            while True:
                await self._commit_wake.wait()
                self._commit_wake.clear()
                while self._unsent:
                    batches, self._unsent = self._unsent, []
                    self._unsent_records = 0
                    records = [r for out, _, _, _ in batches for r in out]
                    # the state now is exactly the state after these batches
                    copy = snapshotter.capture(self.state, len(records)) \
                        if snapshotter else None
                    offset = max((o for _, o, _, _ in batches if o is not None),
                                 default=None)
                    offsets = {(topic, partition): offset} if offset is not None else None
                    started = time.perf_counter()
                    positions = await self.writer.append(
                        records, commit_group=self.group if offsets else None,
                        commit_offsets=offsets)
                    metrics.append_seconds.observe(time.perf_counter() - started)
                    metrics.events_appended.inc(sum(e for _, _, e, _ in batches))
                    if snapshotter is not None:
                        self.events_offset = snapshotter.appended(copy, records, positions)
                    # their cause is in the log now: the children's processors may act
                    for _, _, _, routed in batches:
                        for follow in routed:
                            self._route(follow)
                if not self._unsent:
                    self._drained.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.failed = exc
            log.error("partition %d: an append failed, the partition stops: %r",
                      self.partition, exc)
            self._wake.set()  # the decider raises it, so the owner sees the failure
            self._drained.set()  # nor may a decider waiting for room wait forever

    def _route(self, command: Command) -> None:
        route = self.route
        if route is None:
            return
        try:
            route(command)
        except Exception:  # only a shortcut: the copy on the log is decided anyway
            log.exception("partition %d: could not hand cancel %r over", self.partition,
                          command.command_id)

    def _queue_append(self, out: list[OutRecord], commit_offset: int | None,
                      events: int, routed: list[Command]) -> None:
        self._unsent.append((out, commit_offset, events, routed))
        self._unsent_records += len(out)
        self._drained.clear()
        self._commit_wake.set()

    def _take_urgent(self) -> None:
        """Expedited cancels go first; those for executions not started yet wait for
        their start (``_early_cancels``)."""
        state = self.state
        ready: list[Command] = []
        now = self.clock.now_ms()
        while self._urgent:
            command = self._urgent.popleft()
            execution_id = command.execution_id
            if command.command_id in state.seen_commands:
                continue  # its copy on the log was decided already
            if execution_id in state.executions or execution_id in state.forgotten:
                ready.append(command)
                continue
            if len(execution_id) > MAX_ID_CHARS or len(command.command_id) > MAX_ID_CHARS:
                continue  # its copy is dead-lettered, never decided: it would stay
            self._early_cancels.hold(command, now)
        self._inbox.extendleft(reversed(ready))

    def _process_batch(self) -> None:
        if self._urgent:
            self._take_urgent()
        inbox = self._inbox
        count = min(len(inbox), self.max_batch)
        decided = 0
        routed: list[Command] = []
        out: list[OutRecord] = []
        touched: set[str] = set()
        commit_offset: int | None = None
        events_topic, commands_topic = self.topics.events, self.topics.commands
        partition = self.partition
        # only a log that keeps it (the embedded one) hands the event to its readers
        attach = self.decoded_events and self.log.capabilities.keeps_decoded
        now = self.clock.now_ms()
        if self._early_cancels:
            self._early_cancels.expire(now)
        # counted here and handed to the metrics once per batch (see flowmonkey.metrics)
        types: dict[str, int] = {}
        rejected: dict[str, int] | None = None
        job_events: dict[str, int] | None = None
        claim_latencies: list[int] = []
        events = 0
        while decided < count:
            decided += 1
            item = inbox.popleft()
            record: Record | None = None
            if isinstance(item, Record):
                commit_offset = item.offset + 1
                record = item
                command = self._command_from(item, now, out)
                if command is None:
                    continue
            else:
                command = item
                if command.type in ATTEMPT_ANSWERS:
                    self._answered.discard(command.data.get("attempt_id", ""))
            types[command.type] = types.get(command.type, 0) + 1
            touched.add(command.execution_id)
            if command.type == n.CMD_CANCEL and self._early_cancels:
                self._early_cancels.decided_from_log(command)
            # One command's outcome is encoded, then adopted: if anything raises on the
            # way (decide, an applier, the encoder, adopt), its records are taken back
            # out and its state changes undone, and the command is rejected alone.
            mark = len(out)
            try:
                decision = decide(self.state, command, self.env)
                if decision.ignored is not None:
                    continue
                for event in decision.events:
                    out.append(event_record(events_topic, event, partition, attach=attach))
                for follow in decision.commands:
                    out.append(command_record(commands_topic, follow))
                if decision.job_views:
                    out += job_view_records(self.topics.jobs, partition, decision.job_views)
                self._adopt(decision)
            except Exception as exc:
                del out[mark:]
                poisoned = self._reject_poisoned(command, record, exc, out)
                if poisoned is None:
                    continue
                decision = poisoned
            if self.on_started is not None and command.type == n.CMD_START:
                self._hand_start(command, decision)
            if self.route is not None and decision.commands:
                # handed over by the committer, once this batch is in the log
                routed.extend(f for f in decision.commands if f.type == n.CMD_CANCEL)
            if self._early_cancels and decision.states:
                for execution_id in decision.states:
                    early = self._early_cancels.take(execution_id)
                    if early is not None:
                        # decided next, in this batch: before its handler starts
                        inbox.appendleft(early)
                        count += 1
            events += len(decision.events)
            if decision.job_views:  # (only decisions that touch a job have job events)
                job_events = job_events or {}
                count_job_events(decision.events, job_events, claim_latencies)
            for event in decision.events:
                # a rejection is not an execution's event: its seq is 0 (cheap to test)
                if event.seq == 0 and event.type == n.COMMAND_REJECTED:
                    code = str(event.data.get("code", ""))
                    rejected = rejected or {}
                    rejected[code] = rejected.get(code, 0) + 1
            touched.update(decision.states)
            if decision.triggers:
                touched.update(decision.triggers)
        if out or commit_offset is not None or routed:
            self._queue_append(out, commit_offset, events, routed)
        executions, triggers = self.state.executions, self.state.triggers
        for execution_id in touched:
            state = executions.get(execution_id)
            if state is not None:
                self._arm(state)
            elif triggers:
                trigger = triggers.get(execution_id)
                if trigger is not None:
                    self._arm_trigger(trigger)
        outcomes = self._outcomes
        if outcomes:
            self._outcomes = {}
        self.metrics.batch_decided(partition, decided, types, rejected, outcomes,
                                   len(self.in_flight), job_events, claim_latencies)

    def _hand_start(self, command: Command, decision: Decision) -> None:
        """Hand the execution ``command`` (a start) created to ``on_started``. Its state
        is never changed after this (a later decision changes a clone of it)."""
        on_started = self.on_started
        for event in decision.events:
            if event.type == n.EXECUTION_CREATED and event.command_id == command.command_id:
                execution_id = event.execution_id
                state = decision.states.get(execution_id)
                if on_started is None or state is None:
                    return
                history = [e for e in decision.events if e.seq > 0
                           and e.execution_id == execution_id
                           and e.command_id == command.command_id]
                try:
                    on_started(command.command_id, history, state)
                except Exception:  # only a shortcut: the answer folds the events anyway
                    log.exception("partition %d: could not hand start %r over",
                                  self.partition, command.command_id)
                return

    def _adopt(self, decision: Decision) -> None:
        """Take a decision into memory, all of it or (if adopting raises) none of it:
        ``adopt`` works out all it will change before it changes anything (its
        executions' states are put back here as well, should that ever fail)."""
        state = self.state
        taken: list[tuple[dict[str, Any], list[tuple[str, Any]]]] = [
            (kept, [(key, kept.get(key)) for key in changed])
            for kept, changed in ((state.executions, decision.states),
                                  (state.triggers, decision.triggers),
                                  (state.forms, decision.forms)) if changed]
        try:
            adopt(state, decision.events, decision.states, decision.triggers,
                  decision.forms)
        except BaseException:
            for kept, before in taken:
                for key, value in before:
                    if value is None:
                        kept.pop(key, None)
                    else:
                        kept[key] = value
            raise
        if self._stuck:
            self._stuck.difference_update(decision.states)
            self._stuck.difference_update(decision.triggers)
            self._stuck.difference_update(decision.forms)

    def _reject_poisoned(self, command: Command, record: Record | None, exc: Exception,
                         out: list[OutRecord]) -> Decision | None:
        """A command the engine itself failed on (a kernel bug, an encoder limit): log
        it with its traceback and reject it alone with ``INTERNAL_ERROR``, so the
        partition goes on. It changed nothing: ``_process_batch`` took its records
        back and ``_adopt`` its states.

        Its rejection answers whoever waits for the command (a ``create`` gets the
        error at once). A child's start tells its parent, which would otherwise wait
        for it forever; a step's result is followed by a plain ``INTERNAL_ERROR``
        failure of that step (decided like any handler exception), else the execution
        would stay running with no handler. If that fails as well, or a timer does,
        the execution is left as it is (no handler or timer re-armed for it until a
        command about it succeeds, e.g. a cancel), so one execution cannot loop.
        If even the rejection cannot be encoded, the command is dead-lettered."""
        log.error("partition %d: the engine failed on %s command %r for execution %r; "
                  "it is rejected with %s and changes nothing", self.partition,
                  command.type, command.command_id, command.execution_id,
                  n.REJECT_INTERNAL_ERROR, exc_info=exc)
        reason = internal_error_reason(command, exc)
        rejection = internal_error_rejection(command, reason)
        follow_ups = parent_reports(command, reason)
        mark = len(out)
        try:
            out.append(event_record(self.topics.events, rejection, self.partition,
                                    attach=False))
            for follow in follow_ups:
                out.append(command_record(self.topics.commands, follow))
            # a worker waiting for its command's answer gets it at once
            out += job_view_records(self.topics.jobs, self.partition,
                                    refused_job_view(command, n.REJECT_INTERNAL_ERROR, reason))
            adopt(self.state, [rejection], {})
        except Exception as again:
            del out[mark:]
            log.error("partition %d: cannot even reject command %r (%r): dead-lettered",
                      self.partition, command.command_id, again)
            self._dead_letter_poisoned(command, record, reason, out)
            self._stuck.add(command.execution_id)
            return None
        self._after_poisoned(command)
        return Decision(events=[rejection], commands=follow_ups)

    def _after_poisoned(self, command: Command) -> None:
        follow = internal_error_follow_up(command)
        if follow is not None:
            if follow.type == n.CMD_STEP_RESULT:
                # not started again meanwhile: its (failed) result is queued
                self._answered.add(follow.data["attempt_id"])
            self.submit(follow)
        elif command.type in (n.CMD_STEP_RESULT, n.CMD_TIMER):
            self._stuck.add(command.execution_id)

    def _dead_letter_poisoned(self, command: Command, record: Record | None, reason: str,
                              out: list[OutRecord]) -> None:
        if record is not None:
            self._dead_letter(record, reason, out)
            return
        self.metrics.dead_lettered.inc()
        out.append(internal_dead_letter_record(self.topics.dead_letter, command, reason))

    def _command_from(self, record: Record, now: int, out: list[OutRecord]) -> Command | None:
        """Decode a command record; garbage goes to the dead-letter topic with the reason."""
        try:
            command = decode_command(record.value)
        except DecodeError as exc:
            self._dead_letter(record, str(exc), out)
            return None
        refusal = command_refusal(command, self.partition, self.partitions)
        if refusal is not None:
            self._dead_letter(record, refusal, out)
            return None
        # The processor's clock decides what "now" is, not the producer's. Set in place
        # rather than copied (a model_copy per command is a hot-path cost): the command
        # was decoded just now and nothing else holds it.
        command.__dict__["timestamp_ms"] = now
        return command

    def _dead_letter(self, record: Record, reason: str, out: list[OutRecord]) -> None:
        self.metrics.dead_lettered.inc()  # rare: counted as it happens
        log.warning("dead-lettering record %s:%d:%d: %s", record.topic, record.partition,
                    record.offset, reason)
        out.append(dead_letter_record(self.topics.dead_letter, record, reason))

    # ------------------------------------------------------------------ effects

    def _arm(self, state: ExecutionState) -> None:
        """Start the handler and the timer the execution's state calls for."""
        execution_id = state.id
        if execution_id in self._stuck:
            return  # its last command failed in the engine: see _reject_poisoned
        flight = self.in_flight.get(execution_id)
        attempt_id = state.attempt_id if state.status == ExecutionStatus.RUNNING else None
        if flight is not None and flight.attempt_id != attempt_id:
            # Cancelled, timed out or superseded: abort the stale attempt.
            flight.abort.set()
            flight.task.cancel()
            del self.in_flight[execution_id]
            flight = None
        if attempt_id is not None and flight is None and attempt_id not in self._answered:
            self._launch(state, attempt_id)
        self._arm_timer(execution_id, next_timer(state))

    def _arm_trigger(self, trigger: TriggerState) -> None:
        """Arm the timer of a trigger's state (a schedule's next tick), as ``_arm``
        arms an execution's: a restart or a rebalance rebuilds it from the state."""
        entity_id = trigger.entity_id
        if entity_id in self._stuck:
            return  # its last command failed in the engine: see _reject_poisoned
        timers = trigger_timers_for(trigger)
        self._arm_timer(entity_id, min(timers) if timers else None)

    def _arm_timer(self, entity_id: str, due: tuple[int, str] | None) -> None:
        timers = self.timers
        timer = timers.get(entity_id)
        if timer is not None:
            if due is not None and timer.due == due[0] and timer.kind == due[1]:
                return
            timers.disarm(entity_id)
        if due is not None:
            timers.arm(entity_id, due[0], due[1])

    def _launch(self, state: ExecutionState, attempt_id: str) -> None:
        flow = self.env.flow(state.flow_id, state.flow_version)
        step = flow.steps.get(state.current_step_id or "") if flow else None
        if step is None:
            return  # decide already failed such executions; nothing to run
        # None when this process lacks the handler: the runner then fails the attempt
        # with a logged result (HANDLER_NOT_FOUND), as a handler that raised would
        handler = self.handlers.find(step.type)
        if handler is not None and handler.metadata.stateful:
            # a worker runs it: the attempt becomes a job (its answer is queued, so the
            # attempt is not started again before it is decided)
            self._answered.add(attempt_id)
            self.submit(job_create_command(state, step, handler.metadata, attempt_id,
                                           self.clock.now_ms()))
            return
        abort = asyncio.Event()
        started = time.perf_counter()
        # The handler starts here, in a context of its own: one that finishes without
        # waiting hands its result to the next batch of this pass, with no task.
        context = contextvars.copy_context()
        outcome = context.run(self.runner.start, state, step, handler, abort)
        if isinstance(outcome, Command):
            self._handled(outcome, started)
            return
        task = asyncio.get_running_loop().create_task(
            self._finish(state, outcome, started), context=context)
        self.in_flight[state.id] = _InFlight(attempt_id, task, abort)

    async def _finish(self, state: ExecutionState, pending: Awaitable[Command],
                      started: float) -> None:
        command = await pending
        flight = self.in_flight.get(state.id)
        if flight is not None and flight.attempt_id == state.attempt_id:
            del self.in_flight[state.id]
        self._handled(command, started)

    def _handled(self, command: Command, started: float) -> None:
        self.metrics.handler_seconds.observe(time.perf_counter() - started)
        data = command.data
        result = data.get("result")
        outcome = result.outcome if result is not None else \
            "timeout" if data.get("timed_out") else "raised"
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        self._answered.add(data["attempt_id"])
        self.submit(command)

    def _fire(self, execution_id: str, due: int, kind: str) -> None:
        # (the heap forgot the timer as it fired it)
        self.submit(trusted_command(
            n.CMD_TIMER, f"timer:{execution_id}:{kind}:{due}", execution_id,
            self.clock.now_ms(), {"kind": kind, "due_at": due}))

    # ------------------------------------------------------------------ reads

    def execution_state(self, execution_id: str) -> ExecutionState | None:
        return self.state.executions.get(execution_id)

