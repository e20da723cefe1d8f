"""``execution.cancel`` (B6): statuses, tokens, children, and telling the parent."""

from __future__ import annotations

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import make_event
from flowmonkey.kernel.ids import follow_up_command_id
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import Result

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    cancel_cmd,
    make_flow,
    result_cmd,
    step,
    types,
)


def driver() -> KernelDriver:
    return KernelDriver(DictEnv([
        make_flow("f", [step("s", on_success="next"), step("next")]),
        make_flow("child", [step("c")]),
    ]))


def test_cancelling_a_running_execution_cancels_it() -> None:
    d = driver()
    d.start("e1", "f")

    decision = d.send(cancel_cmd("e1", at=T0 + 5, source="user", reason="changed my mind"))

    assert types(decision.events) == [n.EXECUTION_CANCELLING, n.EXECUTION_CANCELLED]
    assert decision.events[0].data == {"source": "user", "reason": "changed my mind"}
    assert decision.events[1].data == {"source": "user", "reason": "changed my mind",
                                       "step_id": "s", "tokens_invalidated": 0,
                                       "children_cancelled": 0}
    state = d.state("e1")
    assert state.status == ExecutionStatus.CANCELLED
    assert state.attempt_id is None
    assert state.cancellation == {"source": "user", "reason": "changed my mind",
                                  "cancelled_at": T0 + 5}
    assert decision.commands == []


def test_cancelling_a_waiting_execution_cancels_it() -> None:
    d = driver()
    d.start("e1", "f")
    d.result("e1", Result.wait(1000), at=T0 + 1)

    decision = d.send(cancel_cmd("e1", at=T0 + 5))

    assert decision.rejected is None
    assert d.state("e1").status == ExecutionStatus.CANCELLED
    assert d.state("e1").wake_at is None


def test_cancelling_a_pending_execution_cancels_it() -> None:
    d = driver()
    d.inject(make_event(n.EXECUTION_CREATED, "e1", 1, T0,
                        {"flow_id": "f", "flow_version": "1", "context": {}}))
    assert d.state("e1").status == ExecutionStatus.PENDING

    decision = d.send(cancel_cmd("e1", at=T0 + 5))

    assert decision.rejected is None
    assert d.state("e1").status == ExecutionStatus.CANCELLED


def test_the_source_defaults_to_user() -> None:
    d = driver()
    d.start("e1", "f")

    decision = d.send(cancel_cmd("e1", at=T0 + 5, source=None))

    assert decision.events[-1].data["source"] == "user"


def test_cancelling_revokes_and_counts_active_tokens() -> None:
    d = driver()
    d.start("e1", "f")
    d.result("e1", Result.wait_for_signal(), at=T0 + 1, resume_token="tok")

    decision = d.send(cancel_cmd("e1", at=T0 + 5))

    assert types(decision.events) == [n.EXECUTION_CANCELLING, n.TOKEN_REVOKED,
                                      n.EXECUTION_CANCELLED]
    assert decision.events[1].data == {"token": "tok", "reason": "cancelled"}
    assert decision.events[2].data["tokens_invalidated"] == 1
    assert d.state("e1").tokens["tok"].status == "revoked"


def test_cancelling_sends_cancel_commands_to_active_children() -> None:
    d = driver()
    d.start("e1", "f")
    d.result("e1", Result.start_child("child", {}), at=T0 + 1, child_execution_id="c1")
    d.deliver()
    assert d.state("c1").status == ExecutionStatus.RUNNING

    decision = d.send(cancel_cmd("e1", at=T0 + 5, command_id="cancel-1"))

    assert decision.events[-1].data["children_cancelled"] == 1
    assert len(decision.commands) == 1
    follow = decision.commands[0]
    assert follow.type == n.CMD_CANCEL
    assert follow.execution_id == "c1"
    assert follow.data["source"] == "parent"
    assert follow.command_id == follow_up_command_id("cancel-1", n.CMD_CANCEL, "c1")
    assert follow.timestamp_ms == T0 + 5


def test_the_cascade_cancels_the_child_and_its_report_is_ignored() -> None:
    d = driver()
    d.start("e1", "f")
    d.result("e1", Result.start_child("child", {}), at=T0 + 1, child_execution_id="c1")
    d.deliver()
    d.send(cancel_cmd("e1", at=T0 + 5))

    child_cancel, parent_told = d.deliver()

    child = d.state("c1")
    assert child.status == ExecutionStatus.CANCELLED
    assert child.cancellation is not None
    assert child.cancellation["source"] == "parent"
    assert child_cancel.commands[0].type == n.CMD_CHILD_FINISHED
    assert parent_told.ignored is not None  # the parent is already cancelled


def test_a_cancelled_child_tells_its_parent() -> None:
    d = driver()
    d.start("child-1", "child", parent_execution_id="p", tenant_id="acme")

    decision = d.send(cancel_cmd("child-1", at=T0 + 5))

    assert len(decision.commands) == 1
    told = decision.commands[0]
    assert told.type == n.CMD_CHILD_FINISHED
    assert told.execution_id == "p"
    assert told.tenant_id == "acme"
    assert told.data["status"] == "cancelled"
    assert told.data["context"] is None
    assert told.data["error"]["code"] == "CANCELLED"


@pytest.mark.parametrize("end", ["completed", "failed", "cancelled"])
def test_a_finished_execution_is_not_cancellable(end: str) -> None:
    d = driver()
    d.start("e1", "f", context={})
    if end == "completed":
        d.result("e1", Result.success(), at=T0 + 1)
        d.result("e1", Result.success(), at=T0 + 2)
    elif end == "failed":
        d.result("e1", Result.failure("BAD", "x"), at=T0 + 1)
    else:
        d.send(cancel_cmd("e1", at=T0 + 1))
    assert d.state("e1").status.value == end

    decision = d.send(cancel_cmd("e1", at=T0 + 5))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_NOT_CANCELLABLE
    assert end in decision.rejected.data["reason"]


def test_cancelling_an_unknown_execution_is_refused() -> None:
    decision = driver().send(cancel_cmd("ghost", at=T0))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_EXECUTION_NOT_FOUND
    assert decision.rejected.execution_id == "ghost"


def test_another_tenant_cannot_cancel() -> None:
    d = driver()
    d.start("e1", "f", tenant_id="acme")

    decision = d.send(cancel_cmd("e1", at=T0 + 5, tenant_id="globex"))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_EXECUTION_NOT_FOUND
    assert d.state("e1").status == ExecutionStatus.RUNNING


def test_a_result_arriving_after_cancellation_is_ignored() -> None:
    d = driver()
    d.start("e1", "f")
    attempt = d.state("e1").attempt_id
    d.send(cancel_cmd("e1", at=T0 + 5))

    decision = d.send(result_cmd("e1", attempt, Result.success(1), at=T0 + 6))

    assert decision.ignored is not None
    assert d.state("e1").status == ExecutionStatus.CANCELLED
