"""Bounds on what one request can make the engine grow (issue 10, findings 9 and 10):
sub-flow depth, children per execution, error details, command ids, and a cancel
cascade that stops a whole tree of executions promptly."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowmonkey import (
    Engine,
    EngineOptions,
    Event,
    EventDispatcher,
    ExecutionStatus,
    HandlerParams,
    Result,
    StepResult,
    cli,
    handler,
)
from flowmonkey.api import create_app
from flowmonkey.events import names as n
from flowmonkey.events.codec import encode_command
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.error_details import MAX_DETAILS_BYTES, MAX_DETAILS_DEPTH
from flowmonkey.kernel.ids import FOLLOW_UP_ID_LENGTH
from flowmonkey.log import EmbeddedLog, OutRecord
from flowmonkey.model.limits import DEFAULT_MAX_SUBFLOW_DEPTH
from tests.behaviour.flows import flow, key, step
from tests.unit.api_support import eventually

ENDED = {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}


@handler("countdown")
async def countdown(p: HandlerParams) -> StepResult:
    if p.input <= 0:
        return Result.failure("BOTTOM", "reached the bottom", details={"at": 0})
    return Result.success(p.input - 1)


@handler("park")
async def park(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("parked until cancelled")


@handler("noop")
async def noop(p: HandlerParams) -> StepResult:
    return Result.success("ok")


HANDLERS = [countdown, park, noop]

# calls itself with a depth taken from the caller's input (finding 9)
COUNTDOWN = flow(
    "countdown",
    step("dec", "countdown", input=key("depth"), output_key="depth", to="call"),
    step("call", "sub-flow", config={"flowId": "countdown"},
         input={"type": "keys", "keys": ["depth"]}),
)
# calls itself without end (finding 10)
FOREVER = flow("forever", step("call", "sub-flow", config={"flowId": "forever"}))
# each execution starts two copies of itself (one fire-and-forget, one waited for);
# where the depth limit refuses a child, it parks until cancelled
TREE = flow(
    "tree",
    step("left", "sub-flow", config={"flowId": "tree", "waitForCompletion": False},
         input={"type": "keys", "keys": []}, to="right", on_failure="park"),
    step("right", "sub-flow", config={"flowId": "tree"},
         input={"type": "keys", "keys": []}, on_failure="park"),
    step("park", "park"),
)
# starts fire-and-forget children in a loop, until one is refused
SPAWNER = flow(
    "spawner",
    step("spawn", "sub-flow", config={"flowId": "leaf", "waitForCompletion": False},
         input={"type": "keys", "keys": []}, to="spawn", on_failure="done"),
    step("done", "noop", output_key="done"),
)
LEAF = flow("leaf", step("only", "noop"))


def _recorder() -> tuple[EventDispatcher, list[Event]]:
    dispatcher = EventDispatcher(mode="sync")
    seen: list[Event] = []
    dispatcher.on("*", seen.append)
    return dispatcher, seen


def _nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_nesting(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_nesting(v) for v in value), default=0)
    return 0


async def test_a_flow_calling_itself_without_end_stops_at_the_default_depth_limit() -> None:
    dispatcher, seen = _recorder()
    async with Engine(flows=[FOREVER], handlers=HANDLERS, dispatcher=dispatcher) as engine:
        created = await engine.create("forever")

        root = await engine.wait(created.execution.id, timeout_s=20, until=ENDED)

        assert root.status == ExecutionStatus.FAILED
        executions = (await engine.list(limit=1000)).items
        assert len(executions) == DEFAULT_MAX_SUBFLOW_DEPTH + 1
        deepest = [e for e in executions if e.error is not None
                   and e.error.code == lim.SUBFLOW_DEPTH_EXCEEDED]
        assert len(deepest) == 1
        assert "over the limit of 32" in deepest[0].error.message  # type: ignore[union-attr]
        # ids stay short down the chain (follow-up ids were concatenated at each hop):
        # follow-ups' are fixed-length hashes, a step result's "result:<attempt id>"
        follow_ups = [e for e in seen if (e.command_id or "").startswith("fu-")]
        assert len(follow_ups) > DEFAULT_MAX_SUBFLOW_DEPTH
        assert {len(e.command_id or "") for e in follow_ups} == {FOLLOW_UP_ID_LENGTH}
        assert max(len(e.command_id or "") for e in seen) <= 64
        assert max(len(e.event_id) for e in seen) <= 128


async def test_the_depth_limit_is_an_engine_option_and_its_failure_takes_on_failure() -> None:
    async with Engine(flows=[TREE], handlers=HANDLERS,
                      options=EngineOptions(max_subflow_depth=2)) as engine:
        created = await engine.create("tree")

        async def all_parked() -> bool:
            page = await engine.list(limit=100)
            return len(page.items) == 7 and all(
                e.status == ExecutionStatus.WAITING for e in page.items)
        await eventually(all_parked, what="a tree of 7 executions, parked or waiting")

        leaves = [e for e in (await engine.list(limit=100)).items if e.current_step_id == "park"]
        assert len(leaves) == 4
        assert created.execution.id not in {leaf.id for leaf in leaves}


async def test_an_execution_cannot_start_more_children_than_the_limit() -> None:
    async with Engine(flows=[SPAWNER, LEAF], handlers=HANDLERS,
                      options=EngineOptions(max_children=5)) as engine:
        created = await engine.create("spawner")

        parent = await engine.wait(created.execution.id, timeout_s=10, until=ENDED)

        assert parent.status == ExecutionStatus.COMPLETED
        assert parent.context["done"] == "ok"
        assert len(parent.children) == 5
        history = await engine.history(parent.id)
        refusals = [e for e in history if e.type == "step.completed"
                    and (e.data.get("error") or {}).get("code") == lim.CHILDREN_LIMIT_EXCEEDED]
        assert len(refusals) == 1


async def test_a_deep_recursive_sub_flow_fails_with_bounded_details_and_the_api_survives_a_restart(
        tmp_path: Path) -> None:
    """Finding 9: each ancestor nested its child's error in its own, until encoding the
    follow-up raised and stopped the partition, at every start of the engine."""
    options = EngineOptions(max_subflow_depth=400)

    def engine() -> Engine:
        return Engine(flows=[COUNTDOWN, LEAF], handlers=HANDLERS, options=options,
                      log=EmbeddedLog(path=tmp_path, fsync=False))

    async with engine() as first:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(first, None)),
                                   base_url="http://api")
        async with client:
            response = await client.post("/v1/executions",
                                         json={"flowId": "countdown", "context": {"depth": 300}})
            assert response.status_code == 201, response.text
            root_id = response.json()["execution"]["id"]

            root = await first.wait(root_id, timeout_s=30, until=ENDED)

            assert root.status == ExecutionStatus.FAILED
            assert first.processor_failure() is None
            for execution in (await first.list(limit=1000)).items:
                details = execution.error.details if execution.error else None
                assert _nesting(details) <= MAX_DETAILS_DEPTH
                assert len(repr(details)) <= 2 * MAX_DETAILS_BYTES

    async with engine() as again:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(again, None)),
                                   base_url="http://api")
        async with client:
            assert (await client.get("/health")).status_code == 200
            response = await client.post("/v1/executions", json={"flowId": "leaf"})
            assert response.status_code == 201, response.text
            leaf = await again.wait(response.json()["execution"]["id"], timeout_s=10)
            assert leaf.status == ExecutionStatus.COMPLETED
            assert (await client.get(f"/v1/executions/{root_id}")).json()["status"] == "failed"
            assert again.processor_failure() is None


async def test_cancelling_the_root_of_a_tree_stops_every_descendant_promptly() -> None:
    dispatcher, seen = _recorder()
    depth = 9  # 2**10 - 1 = 1023 executions once the tree is built
    async with Engine(flows=[TREE], handlers=HANDLERS, dispatcher=dispatcher,
                      options=EngineOptions(max_subflow_depth=depth)) as engine:
        created = await engine.create("tree")
        root_id = created.execution.id

        async def hundreds_started() -> bool:
            return len({e.execution_id for e in seen}) >= 300
        await eventually(hundreds_started, what="the tree to grow")  # still growing

        root = await engine.get(root_id)
        assert root is not None
        cancelled = await engine.cancel(root_id, reason="stop the tree")

        assert cancelled.cancelled
        assert cancelled.children_cancelled == 2  # its own active children, as they were

        async def every_execution_cancelled() -> bool:
            page = await engine.list(limit=5000)
            return all(e.status == ExecutionStatus.CANCELLED for e in page.items)
        await eventually(every_execution_cancelled, timeout_s=20,
                         what="every execution of the tree cancelled")

        # nothing goes on after that: no new event for half a second
        count = len(seen)
        await asyncio.sleep(0.5)
        assert len(seen) == count
        total = len((await engine.list(limit=5000)).items)
        assert total < 2 ** (depth + 1)  # cancelled while growing


PING = flow("ping", step("call", "sub-flow", config={"flowId": "pong"}))
PONG = flow("pong", step("call", "sub-flow", config={"flowId": "ping"}))


def test_registering_flows_that_can_call_themselves_warns_but_accepts_them(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flowmonkey.engine"):
        engine = Engine(flows=[FOREVER, PING, PONG, LEAF], handlers=HANDLERS)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert any("'forever' can call itself directly" in w for w in warnings)
    assert any("'ping' can call itself via pong" in w and "(ping → pong → ping)" in w
               for w in warnings)
    assert all("32 levels" in w for w in warnings)
    assert not any("'leaf'" in w for w in warnings)
    assert engine.flows.get("forever") is not None


def test_validate_prints_a_warning_for_a_self_calling_flow(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flows.json"
    path.write_text(json.dumps({"flows": [PING, PONG, FOREVER]}))

    assert cli.main(["validate", str(path)]) == 0

    out = capsys.readouterr().out
    assert out.count("warning: flow") == 3
    assert "SUBFLOW_DEPTH_EXCEEDED" in out


def test_engine_options_refuse_a_missing_bound() -> None:
    with pytest.raises(ValueError, match="max_subflow_depth"):
        EngineOptions(max_subflow_depth=-1)
    with pytest.raises(ValueError, match="max_children"):
        EngineOptions(max_children=None)  # type: ignore[arg-type]


async def test_a_cancel_cascade_is_decided_ahead_of_a_backlog_of_commands() -> None:
    """The cancel and its cascade do not wait behind thousands of queued commands."""
    dispatcher, seen = _recorder()
    backlog = 20_000
    async with Engine(flows=[TREE], handlers=HANDLERS, dispatcher=dispatcher,
                      log=EmbeddedLog(partitions=1),
                      options=EngineOptions(max_subflow_depth=3)) as engine:
        created = await engine.create("tree")

        async def tree_parked() -> bool:
            page = await engine.list(limit=100)
            return len(page.items) == 15 and all(
                e.status == ExecutionStatus.WAITING for e in page.items)
        await eventually(tree_parked, what="a tree of 15 waiting executions")
        queued = [engine._command(n.CMD_CANCEL, f"nobody-{i}", {"source": "user"}, None)
                  for i in range(backlog)]
        await engine.log.publish([
            OutRecord(engine.topics.commands, encode_command(c), key=c.execution_id.encode(),
                      partition=0) for c in queued])

        await engine.cancel(created.execution.id)

        async def all_done() -> bool:
            page = await engine.list(limit=100)
            return sum(1 for e in seen if e.type == n.COMMAND_REJECTED) == backlog and all(
                e.status == ExecutionStatus.CANCELLED for e in page.items)
        await eventually(all_done, timeout_s=30, what="the backlog and the cascade decided")
        order = [e.type for e in seen if e.type in (n.COMMAND_REJECTED, n.EXECUTION_CANCELLED)]
        last_cancelled = max(i for i, t in enumerate(order) if t == n.EXECUTION_CANCELLED)
        rejected_before = order[:last_cancelled].count(n.COMMAND_REJECTED)
        assert order.count(n.EXECUTION_CANCELLED) == 15
        assert rejected_before < backlog // 2  # the whole tree ended early in the backlog
