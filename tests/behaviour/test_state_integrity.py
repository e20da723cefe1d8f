"""State changes only through events (issue 10, findings 6, 7 and 8).

What a handler receives is its own, so nothing it does to it reaches the state; what
the engine hands out is the caller's own, so changing it changes nothing the engine
keeps; and ``decide`` reads only the state and the command, so two processes, one of
which lacks a handler, put the same decision on the log.
"""

from __future__ import annotations

from typing import Any

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.tables import ColumnDef, TableDef
from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.partition import PartitionProcessor
from flowmonkey.processors.runner import StepRunner
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, key, step


def _order() -> dict[str, Any]:
    return {"qty": 2, "items": [{"sku": "a", "qty": 5}], "note": {"text": "as sent"}}


@handler("meddle")
async def meddle(params: HandlerParams) -> StepResult:
    """Changes everything it was given, at every depth, then succeeds."""
    params.input["qty"] = 999
    params.input["items"][0]["qty"] = 1
    params.input["items"].append({"sku": "forged"})
    params.context["order"]["note"]["text"] = "via the context view"
    params.helpers.get("order")["qty"] = 777
    params.execution.context["order"]["items"][0]["sku"] = "via the snapshot"
    params.config["limits"]["max"] = 0
    return Result.success("meddled")


@handler("look")
async def look(params: HandlerParams) -> StepResult:
    """What the next step sees of the order, and of its own config."""
    return Result.success({"order": params.input, "max": params.config["limits"]["max"]})


@handler("hold")
async def hold(params: HandlerParams) -> StepResult:
    return Result.wait_for_signal("hold")


MEDDLING = flow(
    "meddling",
    step("meddle", "meddle", input=key("order"), config={"limits": {"max": 5}}, to="look"),
    step("look", "look", input=key("order"), config={"limits": {"max": 5}},
         output_key="seen", to="hold"),
    step("hold", "hold"),
)
QUIET = flow(
    "quiet",
    step("look", "look", input=key("order"), config={"limits": {"max": 5}},
         output_key="seen", to="hold"),
    step("hold", "hold"),
)


async def _rebuilt_context(log: EmbeddedLog, engine: Engine, execution_id: str) -> Any:
    """The context a processor rebuilt from the log holds (as after a restart)."""
    clock = SimulatedClock()
    processor = PartitionProcessor(
        0, 1, log, engine.topics, engine.env, engine.handlers,
        StepRunner(30_000, clock.now_ms), clock, "rebuilt", pull_commands=False)
    await processor.recover()
    try:
        state = processor.execution_state(execution_id)
        assert state is not None
        return state.context
    finally:
        await processor.stop()


async def test_a_handler_that_changes_what_it_received_changes_no_state() -> None:
    log = EmbeddedLog(partitions=1)
    async with Engine(flows=[MEDDLING], handlers=[meddle, look, hold], log=log) as engine:
        created = await engine.create("meddling", {"order": _order()})
        execution_id = created.execution.id
        waiting = await engine.wait(execution_id, timeout_s=10)
        assert waiting.status == ExecutionStatus.WAITING

        expected = {"order": _order(), "seen": {"order": _order(), "max": 5}}
        # the next step decided on what the log says, not on what the handler did
        got = await engine.get(execution_id)
        assert got is not None
        assert got.context == expected
        replayed = await engine.replay(execution_id)
        assert replayed is not None
        assert replayed.context == expected
        live = engine.processors[0].execution_state(execution_id)
        assert live is not None
        assert live.context == expected
        assert await _rebuilt_context(log, engine, execution_id) == expected


async def test_a_handler_that_keeps_and_later_changes_its_output_changes_no_state() -> None:
    kept: list[dict[str, Any]] = []

    @handler("keeper")
    async def keeper(params: HandlerParams) -> StepResult:
        output = {"total": {"amount": 10}}
        kept.append(output)
        params.helpers.set("written", output)
        return Result.success(output)

    async with TestHarness(handlers=[keeper, hold],
                           flows=[flow("keeping", step("k", "keeper", output_key="out",
                                                       to="hold"),
                                       step("hold", "hold"))]) as t:
        created = await t.create("keeping")
        kept[0]["total"]["amount"] = 999  # after the handler returned

        got = await t.get(created.execution.id)
        assert got is not None
        assert got.context["out"] == {"total": {"amount": 10}}
        assert got.context["written"] == {"total": {"amount": 10}}


# --------------------------------------------------------------------------- finding 7
# (on a flow whose handlers change nothing they receive)


async def test_changing_what_get_returned_does_not_change_the_next_get() -> None:
    async with Engine(flows=[QUIET], handlers=[look, hold]) as engine:
        created = await engine.create("quiet", {"order": _order()},
                                      metadata={"labels": {"team": "a"}})
        execution_id = created.execution.id
        await engine.wait(execution_id, timeout_s=10)

        first = await engine.get(execution_id)
        assert first is not None
        first.context["order"]["items"][0]["qty"] = 0
        first.context["added"] = True
        assert first.metadata is not None
        first.metadata["labels"]["team"] = "b"
        created.execution.context["order"]["qty"] = -1

        again = await engine.get(execution_id)
        assert again is not None
        assert again.context["order"] == _order()
        assert "added" not in again.context
        assert again.metadata == {"labels": {"team": "a"}}


async def test_changing_what_list_replay_and_history_returned_changes_nothing() -> None:
    async with Engine(flows=[QUIET], handlers=[look, hold],
                      log=EmbeddedLog(partitions=1)) as engine:
        execution_id = (await engine.create("quiet", {"order": _order()})).execution.id
        await engine.wait(execution_id, timeout_s=10)

        listed = (await engine.list()).items[0]
        listed.context["order"]["qty"] = 0
        replayed = await engine.replay(execution_id)
        assert replayed is not None
        replayed.context["order"]["qty"] = 0
        for event in await engine.history(execution_id):
            _scribble(event)

        again = await engine.get(execution_id)
        assert again is not None
        assert again.context["order"] == _order()
        assert (await engine.list()).items[0].context["order"] == _order()
        replayed_again = await engine.replay(execution_id)
        assert replayed_again is not None
        assert replayed_again.context["order"] == _order()
        created = [e for e in await engine.history(execution_id)
                   if e.type == n.EXECUTION_CREATED]
        assert created[0].data["context"] == {"order": _order()}


async def test_changing_a_harness_result_changes_nothing_the_harness_keeps() -> None:
    async with TestHarness(handlers=[look, hold], flows=[QUIET],
                           record_history=True) as t:
        result = await t.run("quiet", {"order": _order()})
        result.execution.context["order"]["qty"] = 0
        assert result.execution.history[0].output is not None
        result.execution.history[0].output["order"]["qty"] = 0
        for event in result.events:
            _scribble(event)

        again = await t.get(result.execution.id)
        assert again is not None
        assert again.context["order"] == _order()
        assert again.history[0].output == {"order": _order(), "max": 5}
        events = t.events_for(result.execution.id)
        assert events[0].data["context"] == {"order": _order()}


async def test_changing_rows_the_memory_projection_returned_changes_nothing() -> None:
    async with TestHarness(handlers=[hold], flows=[flow("idle", step("hold", "hold"))]) as t:
        await t.engine.projection.create_table(TableDef(
            id="docs", columns=[ColumnDef(id="body", type="json")]))
        projection = t.engine.projection
        tags = ["a"]
        row_id = await projection.insert_row("docs", {"body": {"tags": tags, "meta": {"v": 1}}})
        tags.append("changed by the caller after the insert")

        row = await projection.get_row("docs", row_id)
        assert row is not None
        row.data["body"]["meta"]["v"] = 2
        t.table_rows("docs")[0]["body"]["tags"].clear()
        table = await projection.get_table("docs")
        assert table is not None
        table.columns.clear()

        again = await projection.get_row("docs", row_id)
        assert again is not None
        assert again.data == {"body": {"tags": ["a"], "meta": {"v": 1}}}
        assert t.table_rows("docs") == [{"body": {"tags": ["a"], "meta": {"v": 1}}}]
        stored = await projection.get_table("docs")
        assert stored is not None
        assert [c.id for c in stored.columns] == ["body"]


def _scribble(event: Event) -> None:
    """Change an event's data at every depth, as a careless reader might."""
    pending: list[Any] = [event.data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
            value["scribbled"] = True
        elif isinstance(value, list):
            pending.extend(value)
            value.append("scribbled")


# --------------------------------------------------------------------------- finding 8


@handler("work")
async def work(params: HandlerParams) -> StepResult:
    return Result.success("worked")


WORKING = flow("working", step("w", "work", output_key="w",
                                retry={"maxAttempts": 3, "backoffMs": 0}))


def _decided(events: list[Event], command_id: str) -> list[tuple[str, int, Any]]:
    """What a command's decision put on the log, without ids and clock times."""
    return [(e.type, e.seq, {k: v for k, v in e.data.items() if k != "attempt_id"})
            for e in events if e.command_id == command_id]


async def _events(log: EmbeddedLog, engine: Engine) -> list[Event]:
    from flowmonkey.events.codec import decode_event

    records = await log.read(engine.topics.events, 0, 0, 10_000)
    return [decode_event(r.value) for r in records]


async def test_a_process_without_the_handler_decides_as_one_with_it_and_fails_the_step(
) -> None:
    with_log, without_log = EmbeddedLog(partitions=1), EmbeddedLog(partitions=1)
    async with Engine(flows=[WORKING], handlers=[work], log=with_log) as with_handler, \
            Engine(flows=[WORKING], handlers=[work], log=without_log) as without_handler:
        # (registering the flow checks its handler types, so this process loses its
        # handler afterwards, as one deployed without it that reads the flow from the log)
        assert without_handler.handlers.unregister("work")
        ran = await with_handler.create("working", execution_id="e1")
        failed = await without_handler.create("working", execution_id="e1")
        assert (await with_handler.wait("e1", timeout_s=10)).status == \
            ExecutionStatus.COMPLETED
        done = await without_handler.wait("e1", timeout_s=10)

        ran_events = await _events(with_log, with_handler)
        failed_events = await _events(without_log, without_handler)
        start_ran = next(e for e in ran_events if e.type == n.EXECUTION_CREATED).command_id
        start_failed = next(e for e in failed_events
                            if e.type == n.EXECUTION_CREATED).command_id
        assert start_ran is not None
        assert start_failed is not None
        # the start is decided alike: the step starts in both
        assert _decided(ran_events, start_ran) == _decided(failed_events, start_failed)
        assert [t for t, _, _ in _decided(failed_events, start_failed)][-1] == n.STEP_STARTED
        assert ran.execution.status == failed.execution.status

        # where the handler is missing, its step fails through a logged result, at once
        assert done.status == ExecutionStatus.FAILED
        assert done.error is not None
        assert done.error.code == "HANDLER_NOT_FOUND"
        assert "'work'" in done.error.message
        result_events = [e for e in failed_events
                         if e.command_id is not None and e.command_id.startswith("result:")]
        assert [e.type for e in result_events] == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
        assert result_events[0].data["outcome"] == "failure"
        assert result_events[0].data["error"]["code"] == "HANDLER_NOT_FOUND"
        assert not [e for e in failed_events if e.type == n.STEP_RETRY]
