"""``TestHarness.run_sync`` serves plain (non-async) tests (FEATURES G1)."""

from __future__ import annotations

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import TestHarness
from tests.behaviour.flows import flow, key, step


@handler("greet")
async def greet(p: HandlerParams) -> StepResult:
    return Result.success(f"hello {p.input}")


@handler("nap")
async def nap(p: HandlerParams) -> StepResult:
    return Result.wait(60_000)


F = flow("greet", step("n", "nap", to="g"), step("g", "greet", input=key("name"),
                                                 output_key="greeting"))


def test_run_sync_runs_a_flow_from_a_plain_test() -> None:
    t = TestHarness(handlers=[greet, nap], flows=[F])

    r = t.run_sync("greet", {"name": "Ada"})

    t.assert_completed(r.execution)
    t.assert_context(r.execution, {"greeting": "hello Ada"})
    assert [e.type for e in r.events][-1] == "execution.completed"


def test_run_sync_can_be_called_again_on_the_same_harness() -> None:
    t = TestHarness(handlers=[greet, nap], flows=[F])

    first = t.run_sync("greet", {"name": "Ada"})
    t.reset()
    second = t.run_sync("greet", {"name": "Bob"})

    t.assert_completed(first.execution)
    t.assert_completed(second.execution)
    assert second.execution.context["greeting"] == "hello Bob"


def test_run_sync_can_be_called_twice_without_a_reset() -> None:
    t = TestHarness(handlers=[greet, nap], flows=[F])

    first = t.run_sync("greet", {"name": "Ada"})
    second = t.run_sync("greet", {"name": "Bob"})

    t.assert_completed(second.execution)
    assert second.execution.id != first.execution.id
    assert second.execution.context["greeting"] == "hello Bob"
