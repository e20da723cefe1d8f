"""No command can stop a partition (issue 10, finding 8's second half and build 4).

Whatever the engine itself raises for one command (``decide``, an applier, the event
encoder), that command alone is rejected with ``INTERNAL_ERROR`` (not passed off as
bad input), nothing of it is applied, and the partition goes on. The faults are
injected by replacing a piece of the kernel or the encoder, as a bug there would
behave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowmonkey import (
    CommandRejected,
    Engine,
    EventDispatcher,
    ExecutionStatus,
    HandlerParams,
    Result,
    StepResult,
    handler,
)
from flowmonkey.api import create_app
from flowmonkey.events import names as n
from flowmonkey.events.codec import decode_event, encode_command, event_record
from flowmonkey.events.envelope import Event
from flowmonkey.kernel import decide as decide_module
from flowmonkey.kernel.apply import apply_to_partition
from flowmonkey.kernel.state import ExecutionState, PartitionState
from flowmonkey.log import EmbeddedLog
from flowmonkey.log.base import OutRecord
from flowmonkey.processors import partition as partition_module
from tests.behaviour.flows import flow, key, step
from tests.unit.api_support import eventually

ENDED = {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}


@handler("echo")
async def echo(p: HandlerParams) -> StepResult:
    return Result.success(p.input)


@handler("nap")
async def nap(p: HandlerParams) -> StepResult:
    return Result.wait(10, "a short nap")


FLOWS = [flow("fine", step("a", "echo", input=key("x"), output_key="a")),
         flow("poisoned", step("a", "echo", input=key("x"), output_key="a")),
         flow("napping", step("nap", "nap", to="a"),
              step("a", "echo", input=key("x"), output_key="a"))]


def _start_raising_for(flow_id: str, error: Exception,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel bug: deciding a start of ``flow_id`` raises ``error``."""
    real = decide_module._DECIDERS[n.CMD_START]

    def broken(tx: Any) -> Any:
        if tx.cmd.data.get("flow_id") == flow_id:
            raise error
        return real(tx)
    monkeypatch.setitem(decide_module._DECIDERS, n.CMD_START, broken)


async def test_a_kernel_exception_is_rejected_as_internal_error_not_as_bad_input(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # LookupError is one decide used to pass off as INVALID_COMMAND
    _start_raising_for("poisoned", LookupError("a kernel bug"), monkeypatch)
    async with Engine(flows=FLOWS, handlers=[echo, nap]) as engine:
        began = time.monotonic()
        with pytest.raises(CommandRejected) as refused:
            await engine.create("poisoned", {"x": 1})

        assert refused.value.code == n.REJECT_INTERNAL_ERROR
        assert time.monotonic() - began < 5  # answered, not left to time out
        assert "LookupError" in refused.value.message
        fine = await engine.create("fine", {"x": 2})
        assert (await engine.wait(fine.execution.id, timeout_s=10)).status == \
            ExecutionStatus.COMPLETED
        assert engine.processor_failure() is None


async def test_the_api_answers_a_poisoned_create_with_500_internal_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _start_raising_for("poisoned", TypeError("a kernel bug"), monkeypatch)
    async with Engine(flows=FLOWS, handlers=[echo, nap]) as engine:
        transport = httpx.ASGITransport(app=create_app(engine, None))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.post("/v1/executions", json={"flowId": "poisoned"})

            assert response.status_code == 500
            assert response.json()["error"]["code"] == n.REJECT_INTERNAL_ERROR
            assert "kernel bug" not in response.text  # internals stay in the server log
            assert (await client.post("/v1/executions", json={"flowId": "fine"})) \
                .status_code == 201
            assert (await client.get("/health")).status_code == 200


async def test_one_poisoned_command_in_a_batch_leaves_the_others_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _start_raising_for("poisoned", ValueError("a kernel bug"), monkeypatch)
    async with Engine(flows=FLOWS, handlers=[echo, nap],
                      log=EmbeddedLog(partitions=1)) as engine:
        creates = [engine.create("fine", {"x": i}) for i in range(10)]
        creates.insert(5, engine.create("poisoned", {"x": -1}))

        answers = await asyncio.gather(*creates, return_exceptions=True)

        refused = [a for a in answers if isinstance(a, BaseException)]
        assert len(refused) == 1
        assert isinstance(refused[0], CommandRejected)
        assert refused[0].code == n.REJECT_INTERNAL_ERROR
        for answer in answers:
            if isinstance(answer, BaseException):
                continue
            done = await engine.wait(answer.execution.id, timeout_s=10, until=ENDED)
            assert done.status == ExecutionStatus.COMPLETED
            replayed = await engine.replay(done.id)
            assert replayed is not None
            assert (replayed.status, replayed.context) == (done.status, done.context)
        assert engine.processor_failure() is None


def _encoder_failing_on(output: str) -> Callable[..., OutRecord]:
    """An encoder that cannot write a step's outcome holding ``output`` (as orjson
    could not write the deeply nested details of finding 9)."""
    real = event_record

    def encode(topic: str, event: Event, partition: int | None = None, *,
               attach: bool = True) -> OutRecord:
        if event.type == n.STEP_COMPLETED and event.data.get("output") == output:
            raise TypeError("Recursion limit reached")
        return real(topic, event, partition, attach=attach)
    return encode


async def test_an_encoder_failure_applies_nothing_and_fails_only_that_step(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition_module, "event_record", _encoder_failing_on("poison"))
    async with Engine(flows=FLOWS, handlers=[echo, nap],
                      log=EmbeddedLog(partitions=1)) as engine:
        poisoned = await engine.create("poisoned", {"x": "poison"})
        fine = await engine.create("fine", {"x": "fine"})

        failed = await engine.wait(poisoned.execution.id, timeout_s=10, until=ENDED)
        done = await engine.wait(fine.execution.id, timeout_s=10, until=ENDED)

        assert done.status == ExecutionStatus.COMPLETED
        assert failed.status == ExecutionStatus.FAILED
        assert failed.error is not None
        assert failed.error.code == n.REJECT_INTERNAL_ERROR
        assert "a" not in failed.context  # the step's output was never applied
        history = await engine.history(failed.id)
        rejections = [e for e in history if e.type == n.COMMAND_REJECTED]
        assert rejections == []  # a rejection is not an execution's event (seq 0) …
        replayed = await engine.replay(failed.id)
        assert replayed is not None  # … and the log says what the state says
        assert (replayed.status, replayed.context, replayed.step_count) == \
            (failed.status, failed.context, failed.step_count)
        processor = engine.processors[0]
        state = processor.execution_state(failed.id)
        assert state is not None
        assert state.status == ExecutionStatus.FAILED
        assert engine.processor_failure() is None


async def test_a_timer_the_engine_fails_on_is_rejected_once_and_the_execution_can_be_cancelled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_timer = decide_module._DECIDERS[n.CMD_TIMER]

    def broken(tx: Any) -> Any:
        raise AttributeError("a kernel bug in timers")
    monkeypatch.setitem(decide_module._DECIDERS, n.CMD_TIMER, broken)
    rejections: list[Event] = []
    dispatcher = EventDispatcher(mode="sync")
    dispatcher.on(n.COMMAND_REJECTED, rejections.append)
    async with Engine(flows=FLOWS, handlers=[echo, nap], dispatcher=dispatcher,
                      log=EmbeddedLog(partitions=1)) as engine:
        napping = await engine.create("napping", {"x": 1})

        async def rejected() -> bool:
            return bool(rejections)
        await eventually(rejected, what="the timer's rejection")
        await asyncio.sleep(0.2)  # the timer is not fired (and rejected) again and again

        assert len(rejections) == 1
        assert rejections[0].data["code"] == n.REJECT_INTERNAL_ERROR
        assert rejections[0].data["command_type"] == n.CMD_TIMER
        stuck = await engine.get(napping.execution.id)
        assert stuck is not None
        assert stuck.status == ExecutionStatus.WAITING
        monkeypatch.setitem(decide_module._DECIDERS, n.CMD_TIMER, real_timer)
        cancelled = await engine.cancel(napping.execution.id)
        assert cancelled.cancelled
        fine = await engine.create("fine", {"x": 2})
        assert (await engine.wait(fine.execution.id, timeout_s=10)).status == \
            ExecutionStatus.COMPLETED
        assert engine.processor_failure() is None


async def test_a_command_with_an_overlong_id_is_dead_lettered_not_written_into_events() -> None:
    rejections: list[Event] = []
    dispatcher = EventDispatcher(mode="sync")
    dispatcher.on(n.COMMAND_REJECTED, rejections.append)
    async with Engine(flows=FLOWS, handlers=[echo, nap], dispatcher=dispatcher,
                      log=EmbeddedLog(partitions=1)) as engine:
        huge = engine._command(n.CMD_CANCEL, "e1", {"source": "user"}, None)
        huge = huge.model_copy(update={"command_id": "c" * 100_000})
        await engine.log.publish([OutRecord(engine.topics.commands, encode_command(huge),
                                            key=b"e1", partition=0)])
        fine = await engine.create("fine", {"x": 1})

        assert (await engine.wait(fine.execution.id, timeout_s=10)).status == \
            ExecutionStatus.COMPLETED

        async def dead_lettered() -> bool:
            return bool(await engine.log.read(engine.topics.dead_letter, 0, 0, 10))
        await eventually(dead_lettered, what="the record on the dead-letter topic")
        [record] = await engine.log.read(engine.topics.dead_letter, 0, 0, 10)
        assert b"over 512" in dict(record.headers)["fm-error"]
        assert rejections == []


async def test_an_adoption_that_fails_partway_leaves_memory_as_a_replay_of_the_log_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug met while a start is adopted (after its idempotency key could have been
    indexed): the processor's memory is exactly what replaying the log gives, so no
    key of a start that never happened is found until a restart forgets it."""
    real = ExecutionState.is_terminal

    def is_terminal(self: ExecutionState) -> bool:
        if self.id == "poisoned-1":
            raise RuntimeError("a kernel bug in adopt")
        return real.fget(self)  # type: ignore[attr-defined,no-any-return]
    monkeypatch.setattr(ExecutionState, "is_terminal", property(is_terminal))
    async with Engine(flows=FLOWS, handlers=[echo, nap],
                      log=EmbeddedLog(partitions=1)) as engine:
        with pytest.raises(CommandRejected) as refused:
            await engine.create("fine", {"x": 1}, idempotency_key="k1",
                                execution_id="poisoned-1")
        assert refused.value.code == n.REJECT_INTERNAL_ERROR
        fine = await engine.create("fine", {"x": 2}, idempotency_key="k2")
        await engine.wait(fine.execution.id, timeout_s=10, until=ENDED)
        processor = engine.processors[0]

        async def appended() -> bool:
            return processor.idle
        await eventually(appended, what="everything decided in the log")
        replayed = PartitionState()
        for record in await engine.log.read(engine.topics.events, 0, 0, 1000):
            apply_to_partition(replayed, decode_event(record.value))

        assert "poisoned-1" not in processor.state.executions
        assert list(processor.state.idempotency) == list(replayed.idempotency)
        assert len(processor.state.idempotency) == 1
        assert processor.state.seen_commands == replayed.seen_commands
        assert processor.state == replayed
        assert engine.processor_failure() is None
