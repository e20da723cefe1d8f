"""The Engine on the wall clock: ``async with Engine(...)``, ``create`` and ``wait``
(FEATURES G1). Timings are kept to tens of milliseconds."""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey import (
    Engine,
    EngineOptions,
    Event,
    EventDispatcher,
    Execution,
    ExecutionStatus,
    FlowMonkeyError,
    HandlerParams,
    Result,
    StepResult,
    WaitTimeout,
    handler,
)
from flowmonkey.log import EmbeddedLog
from tests.behaviour.flows import flow, key, step


@handler("double")
async def double(p: HandlerParams) -> StepResult:
    return Result.success(p.input * 2)


@handler("short-nap")
async def short_nap(p: HandlerParams) -> StepResult:
    return Result.wait(40, "short nap")


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval")


HANDLERS = [double, short_nap, approval]
LINEAR = flow("linear", step("a", "double", input=key("x"), output_key="a", to="b"),
              step("b", "double", input=key("a"), output_key="b"))
NAP = flow("nap", step("n", "short-nap", to="a"),
           step("a", "double", input=key("x"), output_key="a"))
SIGNAL = flow("signal", step("s", "approval", output_key="answer", to="a"),
              step("a", "double", input=key("answer"), output_key="a"))


async def test_an_engine_runs_a_flow_to_completion() -> None:
    async with Engine(flows=[LINEAR], handlers=HANDLERS) as engine:
        created = await engine.create("linear", {"x": 5})

        ex = await engine.wait(created.execution.id, timeout_s=5)

        assert created.created is True
        assert ex.status == ExecutionStatus.COMPLETED
        assert ex.context == {"x": 5, "a": 10, "b": 20}
        assert await engine.get(ex.id) == ex


async def test_a_timed_wait_really_waits_on_the_wall_clock() -> None:
    async with Engine(flows=[NAP], handlers=HANDLERS) as engine:
        created = await engine.create("nap", {"x": 1})

        ex = await engine.wait(created.execution.id, timeout_s=5,
                               until=[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED])

        assert ex.status == ExecutionStatus.COMPLETED
        events = await engine.history(ex.id)
        waiting = next(e for e in events if e.type == "execution.waiting")
        resumed = next(e for e in events if e.type == "execution.resumed")
        assert resumed.timestamp_ms - waiting.timestamp_ms >= 40


async def test_wait_returns_a_signal_waiting_execution_and_resume_finishes_it() -> None:
    async with Engine(flows=[SIGNAL], handlers=HANDLERS) as engine:
        created = await engine.create("signal")
        waiting = await engine.wait(created.execution.id, timeout_s=5)
        assert waiting.status == ExecutionStatus.WAITING
        assert waiting.resume_token is not None

        await engine.resume(waiting.id, waiting.resume_token, 21)
        ex = await engine.wait(waiting.id, timeout_s=5,
                               until=[ExecutionStatus.COMPLETED, ExecutionStatus.FAILED])

        assert ex.context == {"answer": 21, "a": 42}


async def test_wait_gives_up_after_its_timeout() -> None:
    async with Engine(flows=[SIGNAL], handlers=HANDLERS) as engine:
        created = await engine.create("signal")

        with pytest.raises(WaitTimeout):
            await engine.wait(created.execution.id, timeout_s=0.05,
                              until=[ExecutionStatus.COMPLETED])


async def test_cancel_through_the_engine() -> None:
    async with Engine(flows=[SIGNAL], handlers=HANDLERS) as engine:
        created = await engine.create("signal")
        await engine.wait(created.execution.id, timeout_s=5)

        result = await engine.cancel(created.execution.id, reason="no longer needed")
        ex = await engine.wait(created.execution.id, timeout_s=5,
                               until=[ExecutionStatus.CANCELLED])

        assert result.cancelled is True
        assert result.tokens_invalidated == 1
        assert ex.cancellation is not None
        assert ex.cancellation.reason == "no longer needed"


async def test_a_handler_over_the_engines_timeout_is_aborted() -> None:
    aborts: list[asyncio.Event] = []

    @handler("stuck")
    async def stuck(p: HandlerParams) -> StepResult:
        aborts.append(p.abort)
        await p.abort.wait()
        return Result.success()

    async with Engine(flows=[flow("stuck", step("s", "stuck"))], handlers=[stuck],
                      options=EngineOptions(timeout_ms=30)) as engine:
        created = await engine.create("stuck")
        ex = await engine.wait(created.execution.id, timeout_s=5)

        assert ex.status == ExecutionStatus.FAILED
        assert ex.error is not None
        assert ex.error.code == "HANDLER_TIMEOUT"
        assert aborts
        assert aborts[0].is_set()
        assert "step.timeout" in [e.type for e in await engine.history(ex.id)]


async def test_the_engines_dispatcher_receives_every_event_in_order() -> None:
    dispatcher = EventDispatcher()  # async mode
    received: list[Event] = []
    dispatcher.on("*", received.append)
    async with Engine(flows=[LINEAR], handlers=HANDLERS, dispatcher=dispatcher) as engine:
        created = await engine.create("linear", {"x": 1})
        ex = await engine.wait(created.execution.id, timeout_s=5)
        await dispatcher.flush()

        mine = [e for e in received if e.execution_id == ex.id]
        assert [e.seq for e in mine] == list(range(1, ex.seq + 1))
        assert mine[-1].type == "execution.completed"
        assert "flow.registered" in [e.type for e in received]


async def test_a_failing_listener_does_not_stop_the_engine() -> None:
    dispatcher = EventDispatcher(mode="sync")

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    dispatcher.on("*", broken)
    async with Engine(flows=[LINEAR], handlers=HANDLERS, dispatcher=dispatcher) as engine:
        created = await engine.create("linear", {"x": 1})
        ex = await engine.wait(created.execution.id, timeout_s=5)

        assert ex.status == ExecutionStatus.COMPLETED
        assert engine.processor_failure() is None


async def test_an_engine_that_is_not_started_refuses_commands() -> None:
    engine = Engine(flows=[LINEAR], handlers=HANDLERS)

    with pytest.raises(FlowMonkeyError, match="not started"):
        await engine.create("linear")


async def test_started_says_whether_the_engine_runs() -> None:
    engine = Engine(flows=[LINEAR], handlers=HANDLERS)
    assert engine.started is False
    with pytest.raises(FlowMonkeyError, match="not started"):
        await engine.refresh_flows()
    async with engine:
        assert engine.started is True
    assert engine.started is False


async def test_refresh_flows_adopts_a_flow_another_engine_published_on_the_log() -> None:
    log = EmbeddedLog()
    reader = Engine(handlers=HANDLERS, log=log, run_processors=False)
    async with reader:
        assert reader.flows.get("linear") is None
        # another engine on the same log publishes its flows when it starts
        async with Engine(flows=[LINEAR], handlers=HANDLERS, log=log):
            await reader.refresh_flows()
            adopted = reader.flows.get("linear")
            assert adopted is not None
            assert adopted.id == "linear"


async def test_engine_list_filters_by_status_and_flow() -> None:
    async with Engine(flows=[LINEAR, SIGNAL], handlers=HANDLERS) as engine:
        done = await engine.create("linear", {"x": 1})
        parked = await engine.create("signal")
        await engine.wait(done.execution.id, timeout_s=5)
        await engine.wait(parked.execution.id, timeout_s=5)

        waiting = await engine.list(status="waiting")
        linear = await engine.list(flow_id="linear")

        assert [e.id for e in waiting.items] == [parked.execution.id]
        assert [e.id for e in linear.items] == [done.execution.id]


async def test_cancelling_a_running_execution_aborts_its_handler() -> None:
    started = asyncio.Event()
    aborts: list[asyncio.Event] = []

    @handler("busy")
    async def busy(p: HandlerParams) -> StepResult:
        aborts.append(p.abort)
        started.set()
        await p.abort.wait()
        return Result.success("ignored")

    async with Engine(flows=[flow("busy", step("b", "busy", output_key="out"))],
                      handlers=[busy]) as engine:
        created = await engine.create("busy")
        await asyncio.wait_for(started.wait(), timeout=5)

        result = await engine.cancel(created.execution.id)
        ex = await engine.wait(created.execution.id, timeout_s=5,
                               until=[ExecutionStatus.CANCELLED])

        assert result.cancelled is True
        assert aborts[0].is_set()
        assert "out" not in ex.context


async def test_a_resume_token_works_once_even_when_resumes_race() -> None:
    async with Engine(flows=[SIGNAL], handlers=HANDLERS) as engine:
        created = await engine.create("signal")
        waiting = await engine.wait(created.execution.id, timeout_s=5)
        token = waiting.resume_token
        assert token is not None

        outcomes = await asyncio.gather(
            *(engine.resume(waiting.id, token, i) for i in range(3)), return_exceptions=True)

        refused = [o for o in outcomes if isinstance(o, FlowMonkeyError)]
        assert len(refused) == 2
        assert {getattr(o, "code", None) for o in refused} == {"TOKEN_USED"}


async def test_waiting_again_and_again_on_a_finished_execution_keeps_no_waiters() -> None:
    async with Engine(flows=[LINEAR], handlers=HANDLERS) as engine:
        created = await engine.create("linear", {"x": 1})
        for _ in range(50):
            await engine.wait(created.execution.id, timeout_s=5)
        with pytest.raises(WaitTimeout):
            await engine.wait(created.execution.id, timeout_s=0.01,
                              until=[ExecutionStatus.CANCELLED])

        assert engine._waiters.executions == {}  # nothing left for events to resolve


def test_an_engine_built_outside_a_loop_with_an_async_dispatcher_runs() -> None:
    dispatcher = EventDispatcher()  # async mode; the registry events come before any loop
    received: list[str] = []
    dispatcher.on("*", lambda e: received.append(e.type))
    engine = Engine(flows=[LINEAR], handlers=HANDLERS, dispatcher=dispatcher)

    async def go() -> str:
        async with engine:
            created = await engine.create("linear", {"x": 1})
            return (await engine.wait(created.execution.id, timeout_s=5)).status.value

    assert asyncio.run(go()) == "completed"
    assert received[0] == "handler.registered"  # emitted by Engine() before the loop ran
    assert received.count("flow.registered") == 1
    assert received[-1] == "execution.completed"


async def test_create_answers_with_the_new_execution_without_reading_it_back() -> None:
    # The answer is folded from the events of the batch that created the execution,
    # so it needs no query of the projection; an idempotency hit, which answers with
    # an execution created earlier, still reads it.
    async with Engine(flows=[SIGNAL], handlers=HANDLERS) as engine:
        reads: list[str] = []
        read = engine.projection.get

        async def counted_get(execution_id: str, *,
                              tenant_id: str | None = None) -> Execution | None:
            reads.append(execution_id)
            return await read(execution_id, tenant_id=tenant_id)

        engine.projection.get = counted_get  # type: ignore[method-assign]

        created = await engine.create("signal", {"x": 1}, idempotency_key="order-1")

        assert reads == []
        assert created.execution.status == ExecutionStatus.RUNNING
        assert created.execution.current_step_id == "s"
        assert created.execution.context == {"x": 1}
        assert created.execution.flow_id == "signal"
        waiting = await engine.wait(created.execution.id, timeout_s=5)
        assert created.execution.model_copy(update={
            "status": waiting.status, "wait_reason": waiting.wait_reason,
            "wait_started_at": waiting.wait_started_at, "resume_token": waiting.resume_token,
            "updated_at": waiting.updated_at, "seq": waiting.seq,
        }) == waiting

        reads.clear()  # (wait reads the projection)
        again = await engine.create("signal", {"x": 2}, idempotency_key="order-1")

        assert again.idempotency_hit is True
        assert again.execution.id == created.execution.id
        assert reads == [created.execution.id]


async def test_the_new_execution_shares_no_dict_with_the_events_listeners_got() -> None:
    seen: list[Event] = []
    dispatcher = EventDispatcher(mode="sync")
    dispatcher.on("execution.created", seen.append)
    async with Engine(flows=[SIGNAL], handlers=HANDLERS, dispatcher=dispatcher) as engine:
        created = await engine.create("signal", {"x": 1}, metadata={"who": "me"})

        created.execution.context["x"] = 99
        assert created.execution.metadata is not None
        created.execution.metadata["who"] = "someone else"

        assert seen[0].data["context"] == {"x": 1}
        assert seen[0].data["metadata"] == {"who": "me"}


async def test_a_create_whose_execution_cannot_be_folded_reads_the_projection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import flowmonkey.runtime.waiters as waiters_module

    def broken_fold(events: object, upto_seq: object = None) -> object:
        raise RuntimeError("fold failed")

    monkeypatch.setattr(waiters_module, "replay_events", broken_fold)
    # (nor is the state the processor decided handed over: the answer has to fold)
    monkeypatch.setattr(waiters_module.Waiters, "started", lambda *args: None)
    async with Engine(flows=[LINEAR], handlers=HANDLERS) as engine:
        created = await engine.create("linear", {"x": 5})

        assert created.execution.context["x"] == 5
        assert (await engine.wait(created.execution.id, timeout_s=5)).status == \
            ExecutionStatus.COMPLETED


async def test_create_answers_with_the_state_its_processor_decided_without_folding_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The processor in this process hands over the state the start left the execution
    # in: neither the events are folded again nor the projection read for the answer.
    import flowmonkey.runtime.waiters as waiters_module

    folds: list[object] = []

    def counted_fold(events: object, upto_seq: object = None) -> object:
        folds.append(events)
        raise AssertionError("folded again")

    monkeypatch.setattr(waiters_module, "replay_events", counted_fold)
    async with Engine(flows=[SIGNAL], handlers=HANDLERS) as engine:
        reads: list[str] = []
        read = engine.projection.get

        async def counted_get(execution_id: str, *,
                              tenant_id: str | None = None) -> Execution | None:
            reads.append(execution_id)
            return await read(execution_id, tenant_id=tenant_id)

        engine.projection.get = counted_get  # type: ignore[method-assign]
        created = await engine.create("signal", {"x": 1}, metadata={"who": "me"})

        assert folds == []
        assert reads == []
        assert created.execution.status == ExecutionStatus.RUNNING
        assert created.execution.current_step_id == "s"
        assert created.execution.context == {"x": 1}
        assert created.execution.metadata == {"who": "me"}
        history = await engine.history(created.execution.id)
        assert created.execution.seq == max(e.seq for e in history
                                             if e.command_id == history[0].command_id)
        # the answer is the caller's own: changing it changes nothing the engine holds
        created.execution.context["x"] = 99
        waiting = await engine.wait(created.execution.id, timeout_s=5)
        assert waiting.context == {"x": 1}


async def test_wait_until_a_status_is_woken_by_the_event_that_sets_it() -> None:
    async with Engine(flows=[SIGNAL], handlers=HANDLERS) as engine:
        created = await engine.create("signal", {"x": 1})

        waiting = await engine.wait(created.execution.id, timeout_s=5,
                                    until=[ExecutionStatus.WAITING])

        assert waiting.status == ExecutionStatus.WAITING
        assert engine._waiters.executions == {}


async def test_a_command_that_could_not_be_published_leaves_no_waiter_behind() -> None:
    async with Engine(flows=[LINEAR], handlers=HANDLERS) as engine:
        async def refuse(records: object) -> object:
            raise FlowMonkeyError("the log refused it")

        engine.log.publish = refuse  # type: ignore[method-assign,assignment]

        with pytest.raises(FlowMonkeyError, match="refused"):
            await engine.create("linear", {"x": 5})

        assert engine._waiters.commands == {}
