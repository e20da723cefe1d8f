"""Child executions (B4, the sub-flow outcome) and ``child.finished``."""

from __future__ import annotations

from typing import Any

from flowmonkey.events import names as n
from flowmonkey.kernel.state import WAIT_CHILD
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import Result

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    cancel_cmd,
    child_finished_cmd,
    make_flow,
    step,
    types,
)


def driver(**call_step: Any) -> KernelDriver:
    options = {"on_success": "next", "output_key": "child", **call_step}
    return KernelDriver(DictEnv([
        make_flow("parent", [step("call", **options), step("next"), step("recover")]),
        make_flow("kid", [step("k", output_key="k_out")]),
    ]))


def waiting_parent(**call_step: Any) -> KernelDriver:
    """``p`` waits at ``call`` for child ``c1`` (started, not yet finished)."""
    d = driver(**call_step)
    d.start("p", "parent", tenant_id="acme", options={"max_steps": 50})
    d.result("p", Result.start_child("kid", {"n": 1}), at=T0 + 1, child_execution_id="c1")
    return d


def test_a_waiting_child_start_records_the_child_and_waits() -> None:
    d = driver()
    d.start("p", "parent", tenant_id="acme", options={"max_steps": 50})

    decision = d.result("p", Result.start_child("kid", {"n": 1}), at=T0 + 1,
                        child_execution_id="c1")

    assert types(decision.events) == [n.STEP_COMPLETED, n.CHILD_STARTED, n.EXECUTION_WAITING]
    assert decision.events[1].data == {"child_execution_id": "c1", "flow_id": "kid",
                                       "step_id": "call", "wait": True}
    assert decision.events[2].data["kind"] == WAIT_CHILD
    assert decision.events[2].data["child_execution_id"] == "c1"
    state = d.state("p")
    assert state.status == ExecutionStatus.WAITING
    assert state.wait_child_id == "c1"
    assert state.children == {"c1": "active"}
    assert len(decision.commands) == 1
    start = decision.commands[0]
    assert start.type == n.CMD_START
    assert start.execution_id == "c1"
    assert start.tenant_id == "acme"
    assert start.data["flow_id"] == "kid"
    assert start.data["context"] == {"n": 1}
    assert start.data["parent_execution_id"] == "p"
    assert start.data["parent_step_id"] == "call"
    assert start.data["options"]["max_steps"] == 50


def test_a_child_input_that_is_not_an_object_is_wrapped() -> None:
    d = driver()
    d.start("p", "parent")

    decision = d.result("p", Result.start_child("kid", [1, 2]), at=T0 + 1,
                        child_execution_id="c1")

    assert decision.commands[0].data["context"] == {"input": [1, 2]}


def test_the_started_child_runs_with_its_parent_recorded() -> None:
    d = waiting_parent()

    (decision,) = d.deliver()

    assert types(decision.events) == [n.EXECUTION_CREATED, n.EXECUTION_STARTED,
                                      n.STEP_STARTED]
    child = d.state("c1")
    assert child.parent_execution_id == "p"
    assert child.parent_step_id == "call"
    assert child.tenant_id == "acme"
    assert child.context == {"n": 1}


def test_a_completed_child_resumes_the_parent_with_its_result() -> None:
    d = waiting_parent()
    d.deliver()
    finished = d.result("c1", Result.success("done"), at=T0 + 2)
    assert finished.commands[0].data == {
        "child_execution_id": "c1", "flow_id": "kid", "status": "completed",
        "context": {"n": 1, "k_out": "done"}, "error": None}

    (decision,) = d.deliver()

    assert types(decision.events) == [n.CHILD_FINISHED, n.EXECUTION_RESUMED, n.TRANSITION,
                                      n.STEP_STARTED]
    assert decision.events[0].data == {"child_execution_id": "c1", "status": "completed",
                                       "error": None}
    expected = {"childExecutionId": "c1", "flowId": "kid", "status": "completed",
                "context": {"n": 1, "k_out": "done"}}
    assert decision.events[1].data == {"step_id": "call", "reason": "child",
                                       "data": expected, "output_key": "child"}
    assert decision.events[2].data["to_step_id"] == "next"
    state = d.state("p")
    assert state.context == {"child": expected}
    assert state.children == {"c1": "completed"}
    assert state.current_step_id == "next"


def test_a_failed_child_fails_the_parent_step_with_child_failed() -> None:
    d = waiting_parent(on_failure=None)
    d.deliver()
    d.result("c1", Result.failure("BOOM", "kid broke"), at=T0 + 2)

    (decision,) = d.deliver()

    assert types(decision.events) == [n.CHILD_FINISHED, n.EXECUTION_RESUMED,
                                      n.EXECUTION_FAILED]
    failed = decision.events[-1].data
    assert failed["code"] == "CHILD_FAILED"
    assert "c1" in failed["message"]
    assert failed["details"]["code"] == "BOOM"
    assert d.state("p").status == ExecutionStatus.FAILED


def test_a_failed_child_follows_the_parent_steps_on_failure() -> None:
    d = waiting_parent(on_failure="recover")
    d.deliver()
    d.result("c1", Result.failure("BOOM", "kid broke"), at=T0 + 2)

    (decision,) = d.deliver()

    assert types(decision.events)[-2:] == [n.TRANSITION, n.STEP_STARTED]
    assert decision.events[-1].data["step_id"] == "recover"


def _completed_per_attempt(d: KernelDriver, execution_id: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for event in d.history(execution_id):
        if event.type == n.STEP_COMPLETED:
            counts[event.data["attempt"]] = counts.get(event.data["attempt"], 0) + 1
    return counts


def test_a_failed_child_gives_its_parent_step_attempt_one_outcome_event() -> None:
    # The attempt's step.completed (outcome wait) came when the handler started the
    # child; the child's failure takes the failure path without a second one.
    d = waiting_parent(on_failure="recover")
    d.deliver()
    d.result("c1", Result.failure("BOOM", "kid broke"), at=T0 + 2)

    d.deliver()

    assert _completed_per_attempt(d, "p") == {1: 1}
    [completed] = [e for e in d.history("p") if e.type == n.STEP_COMPLETED]
    assert completed.data["outcome"] == "wait"


def test_a_failed_child_is_retried_by_the_parent_step_with_one_outcome_per_attempt() -> None:
    d = waiting_parent(on_failure=None, retry={"max_attempts": 1})
    d.deliver()
    d.result("c1", Result.failure("BOOM", "kid broke"), at=T0 + 2)

    (retried,) = d.deliver()[-1:]

    assert types(retried.events) == [n.CHILD_FINISHED, n.EXECUTION_RESUMED, n.STEP_RETRY,
                                     n.STEP_STARTED]
    assert retried.events[2].data["error"]["code"] == "CHILD_FAILED"
    d.result("p", Result.start_child("kid", {"n": 1}), at=T0 + 3, child_execution_id="c2")
    d.deliver()
    d.result("c2", Result.failure("BOOM", "still broken"), at=T0 + 4)
    (failed,) = d.deliver()[-1:]

    assert types(failed.events) == [n.CHILD_FINISHED, n.EXECUTION_RESUMED,
                                    n.EXECUTION_FAILED]
    assert failed.events[-1].data["code"] == "CHILD_FAILED"
    assert _completed_per_attempt(d, "p") == {1: 1, 2: 1}


def _piped_parent(on: str) -> KernelDriver:
    pipes = [{"id": "p1", "step_id": "call", "table_id": "t", "on": on,
              "mappings": [{"source_path": "childExecutionId", "column_id": "child"},
                           {"source_path": "error.code", "column_id": "code"}]}]
    d = KernelDriver(DictEnv([
        make_flow("parent", [step("call", output_key="child")], pipes=pipes),
        make_flow("kid", [step("k")]),
    ]))
    d.start("p", "parent")
    d.result("p", Result.start_child("kid", {}), at=T0 + 1, child_execution_id="c1")
    d.deliver()
    return d


def test_a_failed_child_feeds_the_parent_steps_failure_pipes() -> None:
    d = _piped_parent("failure")
    d.result("c1", Result.failure("BOOM", "kid broke"), at=T0 + 2)

    (decision,) = d.deliver()

    rows = [e for e in decision.events if e.type == n.PIPE_ROW]
    assert [r.data["row"] for r in rows] == [{"child": None, "code": "CHILD_FAILED"}]


def test_a_completed_child_feeds_the_parent_steps_success_pipes() -> None:
    d = _piped_parent("success")
    d.result("c1", Result.success("done"), at=T0 + 2)

    (decision,) = d.deliver()

    assert types(decision.events) == [n.CHILD_FINISHED, n.EXECUTION_RESUMED, n.PIPE_ROW,
                                      n.EXECUTION_COMPLETED]
    assert decision.events[2].data["row"] == {"child": "c1", "code": None}
    assert decision.events[2].data["outcome"] == "success"


def test_a_child_that_cannot_start_fails_the_waiting_parent() -> None:
    d = driver()
    d.start("p", "parent")
    d.result("p", Result.start_child("no-such-flow", {}), at=T0 + 1, child_execution_id="c1")

    rejected, told = d.deliver()

    assert rejected.rejected is not None
    assert types(told.events)[-1] == n.EXECUTION_FAILED
    assert told.events[-1].data["code"] == "CHILD_FAILED"
    assert told.events[-1].data["details"]["code"] == n.REJECT_FLOW_NOT_FOUND


def test_a_fire_and_forget_child_outputs_its_id_and_the_parent_goes_on() -> None:
    d = driver()
    d.start("p", "parent")

    decision = d.result("p", Result.start_child("kid", {"n": 1}, wait=False), at=T0 + 1,
                        child_execution_id="c1")

    assert types(decision.events) == [n.STEP_COMPLETED, n.CHILD_STARTED, n.TRANSITION,
                                      n.STEP_STARTED]
    output = {"childExecutionId": "c1", "flowId": "kid", "mode": "fire-and-forget"}
    assert decision.events[0].data["output"] == output
    assert decision.events[1].data["wait"] is False
    assert d.state("p").context == {"child": output}
    assert d.state("p").current_step_id == "next"
    assert [c.type for c in decision.commands] == [n.CMD_START]


def test_a_fire_and_forget_child_finishing_is_recorded_without_resuming() -> None:
    d = driver()
    d.start("p", "parent")
    d.result("p", Result.start_child("kid", {}, wait=False), at=T0 + 1,
             child_execution_id="c1")
    d.deliver()
    d.result("c1", Result.success(1), at=T0 + 2)

    (decision,) = d.deliver()

    assert types(decision.events) == [n.CHILD_FINISHED]
    assert d.state("p").children == {"c1": "completed"}
    assert d.state("p").current_step_id == "next"


def test_a_report_for_an_unknown_parent_is_refused() -> None:
    decision = driver().send(child_finished_cmd("ghost", "c1", "completed", at=T0))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_EXECUTION_NOT_FOUND


def test_a_report_for_a_child_the_parent_does_not_track_is_ignored() -> None:
    d = waiting_parent()

    decision = d.send(child_finished_cmd("p", "stranger", "completed", at=T0 + 2))

    assert decision.ignored is not None


def test_a_second_report_for_the_same_child_is_ignored() -> None:
    d = waiting_parent()
    d.send(child_finished_cmd("p", "c1", "completed", at=T0 + 2, context={}))

    decision = d.send(child_finished_cmd("p", "c1", "completed", at=T0 + 3, context={}))

    assert decision.ignored is not None


def test_a_completed_childs_result_over_a_limit_fails_the_parent() -> None:
    d = driver()
    d.start("p", "parent", options={"limits": {"max_size_bytes": 100}})
    d.result("p", Result.start_child("kid", {}), at=T0 + 1, child_execution_id="c1")

    decision = d.send(child_finished_cmd("p", "c1", "completed", at=T0 + 2,
                                         context={"big": "x" * 200}))

    assert types(decision.events) == [n.CHILD_FINISHED, n.EXECUTION_RESUMED,
                                      n.EXECUTION_FAILED]
    assert decision.events[-1].data["code"] == "CONTEXT_VALUE_TOO_LARGE"


# --------------------------------------------------------------------------- attached children


def attached(parent_status: str = "running", **parent_options: Any) -> KernelDriver:
    """``p`` (at its first step, or ended as ``parent_status``), then ``c1`` started
    by a caller with ``parent_execution_id="p"``; the attach not yet delivered."""
    d = driver()
    d.start("p", "parent", options={"max_steps": 50, **parent_options})
    if parent_status == "cancelled":
        d.send(cancel_cmd("p", at=T0 + 1))
    elif parent_status == "completed":
        d.result("p", Result.success({}), at=T0 + 1, child_execution_id=None)
        d.result("p", Result.success({}), at=T0 + 2)
        assert d.state("p").status == ExecutionStatus.COMPLETED
    d.follow_ups.clear()
    d.start("c1", "kid", at=T0 + 5, parent_execution_id="p")
    return d


def test_a_callers_child_registers_with_its_parent() -> None:
    d = driver()
    d.start("p", "parent")

    started = d.start("c1", "kid", at=T0 + 5, parent_execution_id="p")

    [attach] = started.commands
    assert attach.type == n.CMD_CHILD_ATTACH
    assert attach.execution_id == "p"
    assert attach.data == {"child_execution_id": "c1", "flow_id": "kid"}
    [decision] = d.deliver()
    assert types(decision.events) == [n.CHILD_ATTACHED]
    assert decision.events[0].data == {"child_execution_id": "c1", "flow_id": "kid"}
    assert d.state("p").children == {"c1": "active"}


def test_cancelling_the_parent_cancels_its_attached_children() -> None:
    d = attached()
    d.deliver()

    decision = d.send(cancel_cmd("p", at=T0 + 10))

    assert decision.events[-1].data["children_cancelled"] == 1
    [cancel] = decision.commands
    assert (cancel.type, cancel.execution_id, cancel.data["source"]) == \
        (n.CMD_CANCEL, "c1", "parent")
    d.deliver()
    assert d.state("c1").status == ExecutionStatus.CANCELLED


def test_an_attached_childs_end_is_recorded_and_not_cancelled_again() -> None:
    d = attached()
    d.deliver()
    d.result("c1", Result.success({}), at=T0 + 6)
    [finished] = d.deliver()
    assert types(finished.events) == [n.CHILD_FINISHED]
    assert d.state("p").children == {"c1": "completed"}
    assert d.state("p").status == ExecutionStatus.RUNNING  # it did not wait for it

    decision = d.send(cancel_cmd("p", at=T0 + 10))

    assert decision.events[-1].data["children_cancelled"] == 0


def test_a_child_attaching_to_a_cancelled_parent_is_cancelled_at_once() -> None:
    d = attached("cancelled")

    [decision] = d.deliver()[:1]

    assert decision.events == []
    [cancel] = decision.commands
    assert (cancel.type, cancel.execution_id) == (n.CMD_CANCEL, "c1")
    d.deliver()
    assert d.state("c1").status == ExecutionStatus.CANCELLED


def test_a_child_of_a_completed_parent_runs_on() -> None:
    d = attached("completed")

    [decision] = d.deliver()

    assert decision.ignored is not None
    assert d.state("c1").status == ExecutionStatus.RUNNING


def test_a_child_of_an_unknown_parent_keeps_its_link_only() -> None:
    d = driver()

    d.start("c1", "kid", parent_execution_id="nobody")
    [decision] = d.deliver()

    assert decision.ignored is not None
    assert decision.rejected is None
    assert d.state("c1").parent_execution_id == "nobody"


def test_attached_children_count_against_max_children() -> None:
    d = attached(max_children=1)
    d.deliver()

    d.start("c2", "kid", at=T0 + 6, parent_execution_id="p")
    [refused] = d.deliver()[:1]

    assert refused.events == []
    [cancel] = refused.commands
    assert cancel.execution_id == "c2"
    assert "max_children" in cancel.data["reason"]
    d.deliver()
    assert d.state("c2").status == ExecutionStatus.CANCELLED
    assert d.state("p").children == {"c1": "active"}


def test_a_sub_flow_child_does_not_attach_again() -> None:
    d = waiting_parent()

    [started] = d.deliver()[:1]

    assert [c.type for c in started.commands] == []
    assert d.state("p").children == {"c1": "active"}
