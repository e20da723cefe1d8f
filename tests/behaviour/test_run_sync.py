"""``TestHarness.run_sync`` serves plain (non-async) tests (FEATURES G1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from flowmonkey import HandlerParams, Result, StepResult, handler
from flowmonkey.testing import RunResult, TestHarness
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


def _within(seconds: float, body: Callable[[], None]) -> None:
    """Run ``body`` in a thread; fail if it has not returned after ``seconds``."""
    failure: list[BaseException] = []

    def go() -> None:
        try:
            body()
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s"
    if failure:
        raise failure[0]


def test_the_harness_works_from_one_event_loop_after_another() -> None:
    t = TestHarness(handlers=[greet, nap], flows=[F])
    results: list[RunResult] = []

    def two_loops() -> None:
        results.append(asyncio.run(t.run("greet", {"name": "Ada"})))
        results.append(asyncio.run(t.run("greet", {"name": "Bob"})))
        asyncio.run(t.close())

    _within(10, two_loops)

    first, second = results
    t.assert_completed(first.execution)
    t.assert_completed(second.execution)
    assert second.execution.context["greeting"] == "hello Bob"
    assert second.execution.id != first.execution.id


def test_a_harness_left_started_by_a_finished_loop_can_be_reset() -> None:
    t = TestHarness(handlers=[greet, nap], flows=[F])

    def run_then_reset() -> None:
        asyncio.run(t.run("greet", {"name": "Ada"}))
        t.reset()
        result = asyncio.run(t.run("greet", {"name": "Bob"}))
        t.assert_completed(result.execution)
        assert {e.execution_id for e in t.events} - {""} == {result.execution.id}

    _within(10, run_then_reset)
