"""What ``decide`` does with any command: dedup by id, unknown types, malformed data."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.kernel.decide import decide
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import Result

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    cancel_cmd,
    make_flow,
    start_cmd,
    step,
    types,
)


def driver() -> KernelDriver:
    d = KernelDriver(DictEnv([make_flow("f", [step("s", on_success="t"), step("t")])]))
    d.start("e1", "f")
    return d


def test_a_command_id_seen_before_is_ignored() -> None:
    d = KernelDriver(DictEnv([make_flow("f", [step("s")])]))
    first = d.send(start_cmd("e1", "f", command_id="same"))

    again = d.send(start_cmd("e2", "f", command_id="same"))

    assert first.rejected is None
    assert again.ignored == "duplicate command"
    assert again.events == []
    assert "e2" not in d.partition.executions


def test_a_rejected_command_id_is_remembered_too() -> None:
    d = driver()
    d.send(cancel_cmd("ghost", at=T0, command_id="c"))

    decision = d.send(cancel_cmd("e1", at=T0 + 1, command_id="c"))

    assert decision.ignored is not None
    assert d.state("e1").status == ExecutionStatus.RUNNING


def test_a_redelivered_step_result_is_ignored() -> None:
    d = driver()
    cmd = Command(type=n.CMD_STEP_RESULT, command_id="result:1", execution_id="e1",
                  timestamp_ms=T0 + 1,
                  data={"attempt_id": d.state("e1").attempt_id, "result": Result.success()})
    d.send(cmd)

    decision = d.send(cmd)

    assert decision.ignored is not None


def test_an_unknown_command_type_is_rejected() -> None:
    d = driver()

    decision = d.send(Command(type="execution.explode", command_id="x", execution_id="e1",
                              timestamp_ms=T0))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_COMMAND
    assert "execution.explode" in decision.rejected.data["reason"]
    assert d.state("e1").status == ExecutionStatus.RUNNING


@pytest.mark.parametrize(
    ("type", "data"),
    [
        (n.CMD_START, {}),  # no flow_id
        (n.CMD_START, {"flow_id": "f", "options": {"limits": {"max_keys": -1}}}),
        (n.CMD_START, {"flow_id": "f", "options": ["not", "an", "object"]}),
        (n.CMD_START, {"flow_id": "f", "timeout": {"bogus": 1}}),
        (n.CMD_STEP_RESULT, {}),  # no attempt_id
        (n.CMD_TIMER, {"kind": "wake"}),  # no due_at
        (n.CMD_TIMER, {"kind": "wake", "due_at": "soon"}),
        (n.CMD_CHILD_FINISHED, {}),
        (n.CMD_CHILD_FINISHED, {"child_execution_id": ["c"], "status": "completed"}),
        (n.CMD_CHILD_ATTACH, {}),
        (n.CMD_CHILD_ATTACH, {"child_execution_id": 7}),
        (n.CMD_REVOKE_TOKEN, {}),
        (n.CMD_REVOKE_TOKEN, {"token": {"not": "hashable"}}),
    ],
)
def test_a_malformed_command_is_rejected_not_crashed_on(type: str, data: dict[str, Any]) -> None:
    d = driver()
    execution_id = "new" if type == n.CMD_START else "e1"

    decision = d.send(Command(type=type, command_id="bad", execution_id=execution_id,
                              timestamp_ms=T0 + 1, data=data))

    assert decision.rejected is not None, decision
    assert types(decision.events) == [n.COMMAND_REJECTED]
    assert decision.rejected.data["code"] == n.REJECT_INVALID_COMMAND
    assert "new" not in d.partition.executions
    assert d.state("e1").status == ExecutionStatus.RUNNING


@pytest.mark.parametrize(
    "data",
    [
        {"result": {"outcome": "success", "output": 1}},  # a result as a producer's JSON
        {"result": "success"},
        {"result": Result.success(), "writes": [[1, "path is not a string"]]},
        {"result": Result.success(), "writes": ["x"]},
        {"raised": "not an object"},
    ],
)
def test_a_malformed_step_result_for_the_current_attempt_is_rejected(
        data: dict[str, Any]) -> None:
    d = driver()
    attempt_id = d.state("e1").attempt_id

    decision = d.send(Command(type=n.CMD_STEP_RESULT, command_id="bad", execution_id="e1",
                              timestamp_ms=T0 + 1, data={"attempt_id": attempt_id, **data}))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_COMMAND
    assert d.state("e1").attempt_id == attempt_id  # still waiting for a real result


def test_a_malformed_command_leaves_no_half_decision() -> None:
    d = driver()
    before = d.state("e1")

    decision = decide(d.partition, Command(
        type=n.CMD_STEP_RESULT, command_id="bad", execution_id="e1", timestamp_ms=T0 + 1,
        data={"attempt_id": before.attempt_id, "result": Result.wait_for_signal()}), d.env)

    assert types(decision.events) == [n.COMMAND_REJECTED]
    assert decision.commands == []
    assert decision.states == {}
