"""The sub-flow built-in: a step that runs another flow as a child execution
(FEATURES B4, C3)."""

from __future__ import annotations

from typing import Any

from flowmonkey import ExecutionStatus, HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, step, types_of


@handler("square")
async def square(p: HandlerParams) -> StepResult:
    return Result.success(p.input["n"] ** 2)


@handler("explode")
async def explode(p: HandlerParams) -> StepResult:
    return Result.failure("CHILD_BROKE", "the child broke")


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("approval")


@handler("ok")
async def ok(p: HandlerParams) -> StepResult:
    return Result.success("ok")


CHILD = flow("square", step("sq", "square", output_key="squared"))
BROKEN = flow("broken", step("x", "explode"))
SLOW_CHILD = flow("slow-child", step("s", "approval", output_key="approval", to="sq"),
                  step("sq", "square", output_key="squared"))
HANDLERS = [square, explode, approval, ok]


def parent(child_flow: str, *, wait: bool = True, on_failure: str | None = None) -> dict[
        str, object]:
    return flow(
        f"parent-of-{child_flow}",
        step("call", "sub-flow", config={"flowId": child_flow, "waitForCompletion": wait},
             input={"type": "keys", "keys": ["n"]}, output_key="child", to="after",
             on_failure=on_failure),
        step("after", "ok", output_key="after"),
        step("handle", "ok", output_key="handled"),
    )


async def test_a_waiting_sub_flow_stores_the_childs_outcome_at_the_output_key() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[CHILD, parent("square")]) as t:
        r = await t.run("parent-of-square", {"n": 7, "other": "not passed"})

        t.assert_completed(r.execution)
        out = r.execution.context["child"]
        assert set(out) == {"childExecutionId", "flowId", "status", "context"}
        assert out["flowId"] == "square"
        assert out["status"] == "completed"
        assert out["context"] == {"n": 7, "squared": 49}
        child = await t.get(out["childExecutionId"])
        assert child is not None
        t.assert_completed(child)
        assert child.parent_execution_id == r.execution.id


async def test_a_waiting_parent_resumes_only_when_its_child_ends() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[SLOW_CHILD, parent("slow-child")]) as t:
        r = await t.run("parent-of-slow-child", {"n": 3})
        assert r.execution.status == ExecutionStatus.WAITING
        [child] = (await t.engine.list(parent_execution_id=r.execution.id)).items
        assert child.resume_token is not None

        await t.resume(child.id, child.resume_token, "yes")

        done = await t.get(r.execution.id)
        assert done is not None
        t.assert_completed(done)
        assert done.context["child"]["context"]["squared"] == 9


async def test_a_failed_child_fails_the_parent_with_child_failed() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[BROKEN, parent("broken")]) as t:
        r = await t.run("parent-of-broken")

        t.assert_failed(r.execution, "CHILD_FAILED")
        assert r.execution.error is not None
        assert r.execution.error.details["code"] == "CHILD_BROKE"


async def test_a_failed_child_follows_the_parents_on_failure_branch() -> None:
    async with TestHarness(handlers=HANDLERS,
                           flows=[BROKEN, parent("broken", on_failure="handle")]) as t:
        r = await t.run("parent-of-broken")

        t.assert_completed(r.execution)
        assert r.execution.context["handled"] == "ok"
        assert "after" not in r.execution.context


def _outcomes_per_attempt(events: list[Any], step_id: str) -> dict[int, list[str]]:
    """The ``step.completed`` outcomes of each attempt of ``step_id``."""
    found: dict[int, list[str]] = {}
    for e in events:
        if e.type == "step.completed" and e.data["step_id"] == step_id:
            found.setdefault(e.data["attempt"], []).append(e.data["outcome"])
    return found


async def test_a_failed_child_gives_the_parent_step_one_outcome_event() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[BROKEN, parent("broken")]) as t:
        r = await t.run("parent-of-broken")

        t.assert_failed(r.execution, "CHILD_FAILED")
        assert _outcomes_per_attempt(r.events, "call") == {1: ["wait"]}
        assert types_of(r.events)[-3:] == ["child.finished", "execution.resumed",
                                           "execution.failed"]


async def test_a_failed_child_is_retried_with_one_outcome_event_per_attempt() -> None:
    retried = parent("broken")
    retried["steps"]["call"]["retry"] = {"maxAttempts": 2}  # type: ignore[index]
    async with TestHarness(handlers=HANDLERS, flows=[BROKEN, retried]) as t:
        r = await t.run("parent-of-broken")

        t.assert_failed(r.execution, "CHILD_FAILED")
        assert _outcomes_per_attempt(r.events, "call") == {
            1: ["wait"], 2: ["wait"], 3: ["wait"]}
        assert types_of(r.events).count("step.retry") == 2
        children = (await t.engine.list(parent_execution_id=r.execution.id)).items
        assert len(children) == 3


async def test_fire_and_forget_continues_at_once_and_the_child_runs_too() -> None:
    async with TestHarness(handlers=HANDLERS,
                           flows=[SLOW_CHILD, parent("slow-child", wait=False)]) as t:
        r = await t.run("parent-of-slow-child", {"n": 4})

        t.assert_completed(r.execution)  # the child still waits for its signal
        out = r.execution.context["child"]
        assert out["mode"] == "fire-and-forget"
        assert out["flowId"] == "slow-child"
        child = await t.get(out["childExecutionId"])
        assert child is not None
        assert child.status == ExecutionStatus.WAITING
        assert child.parent_execution_id == r.execution.id


async def test_a_fire_and_forget_child_runs_to_completion() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[CHILD, parent("square", wait=False)]) as t:
        r = await t.run("parent-of-square", {"n": 5})

        t.assert_completed(r.execution)
        child = await t.get(r.execution.context["child"]["childExecutionId"])
        assert child is not None
        t.assert_completed(child)
        assert child.context["squared"] == 25


async def test_list_by_parent_lists_the_children() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[CHILD, parent("square")]) as t:
        first = await t.run("parent-of-square", {"n": 1})
        await t.run("parent-of-square", {"n": 2})

        page = await t.engine.list(parent_execution_id=first.execution.id)

        assert [c.id for c in page.items] == [first.execution.context["child"]["childExecutionId"]]
        assert page.items[0].flow_id == "square"


async def test_a_sub_flow_naming_an_unknown_flow_fails_the_step() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[parent("nowhere")]) as t:
        r = await t.run("parent-of-nowhere")

        t.assert_failed(r.execution, "SUB_FLOW_ERROR")
        assert "child.started" not in types_of(r.events)


async def test_a_child_cancelled_on_its_own_fails_its_waiting_parent_with_child_failed() -> None:
    async with TestHarness(handlers=HANDLERS, flows=[SLOW_CHILD, parent("slow-child")]) as t:
        r = await t.run("parent-of-slow-child", {"n": 3})
        [child] = (await t.engine.list(parent_execution_id=r.execution.id)).items

        await t.cancel(child.id)

        ex = await t.get(r.execution.id)
        assert ex is not None
        t.assert_failed(ex, "CHILD_FAILED")
        assert ex.error is not None
        assert ex.error.details["code"] == "CANCELLED"
