"""State changes only through events: a decision's states share no mutable object with
its events or its command.

The embedded log hands a decided event itself to the projection and the listeners, and
a handler's result reaches ``decide`` as the objects the handler returned. If a state
kept any of those objects, a change made to them by their other holders would change
the state without an event (issue 10, finding 6).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, Event
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.decide import Decision
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.model.result import Result

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    child_finished_cmd,
    make_flow,
    resume_cmd,
    step,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)
# containers, so that there is something to share
CONTAINERS = st.one_of(st.lists(JSON, min_size=1, max_size=3),
                       st.dictionaries(st.text(max_size=3), JSON, min_size=1, max_size=3))


def _mutables(value: Any, found: dict[int, Any]) -> dict[int, Any]:
    """Every dict and list reachable from ``value`` (through tuples, dataclasses and
    models too), by id."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict | list):
            if id(item) in found:
                continue
            found[id(item)] = item
            pending.extend(item.values() if isinstance(item, dict) else item)
        elif isinstance(item, tuple):
            pending.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return found


def _shared(decision: Decision, command: Command) -> list[str]:
    """What the decision's states hold that its events or command hold too."""
    outside: dict[int, Any] = {}
    _mutables(command.data, outside)
    for event in decision.events:
        _mutables(event.data, outside)
    problems = []
    for execution_id, state in decision.states.items():
        for f in dataclasses.fields(ExecutionState):
            held = _mutables(getattr(state, f.name), {})
            both = set(held) & set(outside)
            if both:
                problems.append(f"{execution_id}.{f.name} shares {len(both)} object(s)")
    return problems


FLOW = make_flow("f", [
    step("work", input={"type": "key", "key": "order"}, output_key="work",
         on_success="hold"),
    step("hold", on_success="last", on_resume="last"),
    step("last", output_key="last"),
])


class _Driver(KernelDriver):
    """A driver that checks every decision for shared objects."""

    def send(self, cmd: Command) -> Decision:
        decision = super().send(cmd)
        assert _shared(decision, cmd) == []
        if cmd.type == n.CMD_STEP_RESULT:
            # a handler's result is its objects: it may change them after returning,
            # and the events go on to the projection as objects
            in_events: dict[int, Any] = {}
            for event in decision.events:
                _mutables(event.data, in_events)
            assert not set(in_events) & set(_mutables(cmd.data, {}))
        return decision


@settings(max_examples=40, deadline=None)
@given(order=CONTAINERS, metadata=CONTAINERS, output=CONTAINERS, written=CONTAINERS,
       resumed=CONTAINERS, details=CONTAINERS)
def test_decided_states_share_no_mutable_object_with_events_or_commands(
        order: Any, metadata: Any, output: Any, written: Any, resumed: Any,
        details: Any) -> None:
    driver = _Driver(DictEnv([FLOW]))
    driver.start("e1", "f", context={"order": order}, metadata={"m": metadata},
                 options={"record_history": True})
    # a success with an output and a write, kept in the context and the history
    driver.result("e1", Result.success(output), at=T0 + 1, writes=[("w", written)])
    driver.result("e1", Result.wait_for_signal(resume_token="tok"), at=T0 + 2)
    driver.send(resume_cmd("e1", "tok", {"r": resumed}, at=T0 + 3))
    decision = driver.result("e1", Result.failure("BAD", "no", details), at=T0 + 4)

    assert decision.states["e1"].error is not None
    state = driver.state("e1")
    assert state.context["order"] == private_copy(order)
    assert state.context["work"] == private_copy(output)
    assert state.context["w"] == private_copy(written)
    assert state.context["r"] == private_copy(resumed)
    assert state.error is not None
    assert state.error["details"] == private_copy(details)


def test_changing_a_decided_event_changes_no_state() -> None:
    driver = KernelDriver(DictEnv([FLOW]))
    items = [{"sku": "a", "qty": 5}]
    order = {"qty": 2, "items": items}
    started = driver.start("e1", "f", context={"order": order},
                           options={"record_history": True})
    output = {"total": {"amount": 10}}
    finished = driver.result("e1", Result.success(output), at=T0 + 1)

    # what the events' other holders might do: the command's author, a listener
    items[0]["qty"] = 1
    output["total"]["amount"] = 999
    for event in (*started.events, *finished.events):
        _scribble(event)

    state = driver.partition.executions["e1"]
    assert state.context["order"] == {"qty": 2, "items": [{"sku": "a", "qty": 5}]}
    assert state.context["work"] == {"total": {"amount": 10}}
    assert state.history[0]["input"] == {"qty": 2, "items": [{"sku": "a", "qty": 5}]}
    assert state.history[0]["output"] == {"total": {"amount": 10}}


def _scribble(event: Event) -> None:
    for value in _mutables(event.data, {}).values():
        if isinstance(value, dict):
            value["scribbled"] = True
        else:
            value.append("scribbled")


def test_a_private_copy_is_what_the_log_gives_back() -> None:
    value: dict[str, Any] = {"t": (1, [2, (3,)]), "nested": {"a": [1, {"b": None}]}}

    copied = private_copy(value)

    assert copied == {"t": [1, [2, [3]]], "nested": {"a": [1, {"b": None}]}}
    assert copied["nested"] is not value["nested"]
    assert copied["nested"]["a"][1] is not value["nested"]["a"][1]


def test_a_value_the_log_cannot_encode_is_still_copied_container_by_container() -> None:
    marker = object()
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    deep: Any = []
    for _ in range(2000):  # past orjson's nesting limit and Python's recursion limit
        deep = [deep]
    value: dict[Any, Any] = {1: {"x": [marker]}, "big": 2**70, "cycle": cyclic, "deep": deep}

    copied = private_copy(value)

    assert copied[1] == {"x": [marker]}
    assert copied[1] is not value[1]
    assert copied[1]["x"][0] is marker  # an object it cannot copy is kept as it is
    assert copied["big"] == 2**70
    assert copied["cycle"][1] is copied["cycle"]
    assert copied["cycle"] is not cyclic
    assert copied["deep"] is not deep


PARENT = make_flow("parent", [step("call", output_key="child", on_success="next"),
                              step("next")])
KID = make_flow("kid", [step("k", output_key="k_out")])


@settings(max_examples=40, deadline=None)
@given(child_input=CONTAINERS, child_context=CONTAINERS, child_error=CONTAINERS)
def test_a_childs_report_shares_no_mutable_object_with_the_parents_state(
        child_input: Any, child_context: Any, child_error: Any) -> None:
    driver = _Driver(DictEnv([PARENT, KID]))
    driver.start("p", "parent", options={"record_history": True})
    driver.result("p", Result.start_child("kid", child_input), at=T0 + 1,
                  child_execution_id="c1")
    driver.send(child_finished_cmd("p", "c1", "completed", at=T0 + 2,
                                   context={"c": child_context}, flow_id="kid"))

    state = driver.state("p")
    assert state.context["child"]["context"] == {"c": private_copy(child_context)}
    # and a failed child's error (reported to the next step's child) shares nothing
    driver.result("p", Result.start_child("kid", child_input), at=T0 + 3,
                  child_execution_id="c2")
    driver.send(child_finished_cmd("p", "c2", "failed", at=T0 + 4,
                                   error={"code": "X", "message": "x", "details": child_error}))


@settings(max_examples=200, deadline=None)
@given(value=JSON | st.dictionaries(st.text(max_size=3), st.floats(), max_size=3))
def test_a_private_copy_equals_the_json_round_trip_and_shares_nothing(value: Any) -> None:
    copied = private_copy(value)

    assert copied == orjson.loads(orjson.dumps(value))
    assert not set(_mutables(copied, {})) & set(_mutables(value, {}))
