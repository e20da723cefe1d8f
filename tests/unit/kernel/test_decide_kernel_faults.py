"""``decide`` refuses malformed commands by explicit checks and lets its own faults out
(the processor rejects those with INTERNAL_ERROR): a kernel bug is never bad input."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.kernel import decide as decide_module
from flowmonkey.kernel.command_checks import MAX_ID_CHARS
from flowmonkey.kernel.decide import decide

from .support import T0, DictEnv, KernelDriver, make_flow, step


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"k": value}
    return value


def driver() -> KernelDriver:
    d = KernelDriver(DictEnv([make_flow("f", [step("s", on_success="t"), step("t")])]))
    d.start("e1", "f")
    return d


@pytest.mark.parametrize("error", [LookupError("bug"), TypeError("bug"), ValueError("bug"),
                                   AttributeError("bug")])
def test_an_exception_inside_a_decider_is_not_turned_into_invalid_command(
        error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    d = driver()

    def broken(tx: Any) -> Any:
        raise error
    monkeypatch.setitem(decide_module._DECIDERS, n.CMD_CANCEL, broken)

    with pytest.raises(type(error)):
        decide(d.partition, Command(type=n.CMD_CANCEL, command_id="c", execution_id="e1",
                                    timestamp_ms=T0 + 1), d.env)


@pytest.mark.parametrize(("data", "named"), [
    ({"flow_id": "f", "options": {"max_subflow_depth": -1}}, "max_subflow_depth"),
    ({"flow_id": "f", "options": {"max_children": "many"}}, "max_children"),
    ({"flow_id": "f", "depth": "deep"}, "depth"),
    ({"flow_id": "f", "metadata": ["not", "an", "object"]}, "metadata"),
    ({"flow_id": 7}, "flow_id"),
    ({"flow_id": "f", "metadata": _nested(300)}, "metadata"),
    ({"flow_id": "f", "options": {"limits": {"max_depth": 500}}}, "limits"),
])
def test_a_malformed_start_is_refused_naming_the_field(data: dict[str, Any],
                                                       named: str) -> None:
    d = driver()

    decision = d.send(Command(type=n.CMD_START, command_id="bad", execution_id="new",
                              timestamp_ms=T0 + 1, data=data))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_COMMAND
    assert named in decision.rejected.data["reason"]
    assert "new" not in d.partition.executions


def test_an_overlong_command_id_is_refused() -> None:
    d = driver()

    decision = d.send(Command(type=n.CMD_CANCEL, command_id="c" * (MAX_ID_CHARS + 1),
                              execution_id="e1", timestamp_ms=T0 + 1))

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_COMMAND
