"""``execution.start``: creating an execution, idempotency, and the reasons a start is refused."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.kernel.decide import MAX_IDEMPOTENCY_WINDOW_MS, decide
from flowmonkey.kernel.state import PartitionState
from flowmonkey.model.execution import ExecutionStatus

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    cancel_cmd,
    linear_flow,
    make_flow,
    start_cmd,
    step,
    types,
)

HOUR = 60 * 60 * 1000
DAY = 24 * HOUR


def driver() -> KernelDriver:
    return KernelDriver(DictEnv([linear_flow()]))


def test_a_start_creates_starts_and_enters_the_initial_step_in_order() -> None:
    d = driver()

    decision = d.start("e1", "linear", context={"x": 1})

    assert types(decision.events) == [n.EXECUTION_CREATED, n.EXECUTION_STARTED, n.STEP_STARTED]
    assert [e.seq for e in decision.events] == [1, 2, 3]
    created, started, step_started = decision.events
    assert created.data["flow_id"] == "linear"
    assert created.data["flow_version"] == "1"
    assert created.data["context"] == {"x": 1}
    assert started.data == {"step_id": "s1"}
    assert step_started.data["step_id"] == "s1"
    assert step_started.data["attempt"] == 1
    assert step_started.data["attempt_id"] == "e1:3"
    state = decision.states["e1"]
    assert state.status == ExecutionStatus.RUNNING
    assert state.attempt_id == "e1:3"
    assert state.step_count == 1
    assert decision.rejected is None


def test_events_carry_the_command_id_tenant_and_timestamp() -> None:
    d = driver()

    decision = d.start("e1", "linear", at=T0 + 7, tenant_id="acme", command_id="c-1")

    assert {e.command_id for e in decision.events} == {"c-1"}
    assert {e.tenant_id for e in decision.events} == {"acme"}
    assert {e.timestamp_ms for e in decision.events} == {T0 + 7}
    assert [e.event_id for e in decision.events] == ["e1:1", "e1:2", "e1:3"]


def test_a_start_pins_the_highest_published_version_when_none_is_given() -> None:
    env = DictEnv([linear_flow(), make_flow("linear", [step("only")], version="1.10"),
                   make_flow("linear", [step("draft")], version="2", status="draft")])
    d = KernelDriver(env)

    decision = d.start("e1", "linear")

    assert decision.events[0].data["flow_version"] == "1.10"
    assert d.state("e1").current_step_id == "only"


def test_a_start_of_an_explicit_version_uses_it() -> None:
    env = DictEnv([linear_flow(), make_flow("linear", [step("only")], version="1.10")])
    d = KernelDriver(env)

    d.start("e1", "linear", flow_version="1")

    assert d.state("e1").flow_version == "1"
    assert d.state("e1").current_step_id == "s1"


# --------------------------------------------------------------------------- idempotency


def test_a_duplicate_start_inside_the_window_hits_the_existing_execution() -> None:
    d = driver()
    d.start("e1", "linear", idempotency_key="k")

    decision = d.start("e2", "linear", at=T0 + HOUR, idempotency_key="k")

    assert types(decision.events) == [n.IDEMPOTENCY_HIT]
    hit = decision.events[0]
    assert hit.execution_id == "e1"
    assert hit.data == {"idempotency_key": "k", "flow_id": "linear",
                        "duplicate_execution_id": "e2"}
    assert "e2" not in d.partition.executions


def test_the_default_window_is_24_hours() -> None:
    d = driver()
    d.start("e1", "linear", idempotency_key="k")
    assert d.state("e1").idempotency_expires_at == T0 + DAY

    inside = d.start("e2", "linear", at=T0 + DAY - 1, idempotency_key="k")
    after = d.start("e3", "linear", at=T0 + DAY, idempotency_key="k")

    assert types(inside.events) == [n.IDEMPOTENCY_HIT]
    assert types(after.events)[0] == n.EXECUTION_CREATED
    assert d.state("e3").idempotency_key == "k"
    assert d.state("e3").idempotency_expires_at == T0 + 2 * DAY


def test_a_start_after_a_custom_window_creates_a_new_execution() -> None:
    d = driver()
    d.start("e1", "linear", idempotency_key="k", idempotency_window_ms=1000)

    decision = d.start("e2", "linear", at=T0 + 1000, idempotency_key="k")

    assert decision.events[0].type == n.EXECUTION_CREATED
    assert decision.events[0].execution_id == "e2"


def test_the_window_is_capped_at_seven_days() -> None:
    d = driver()

    d.start("e1", "linear", idempotency_key="k", idempotency_window_ms=30 * DAY)

    assert d.state("e1").idempotency_expires_at == T0 + MAX_IDEMPOTENCY_WINDOW_MS
    assert MAX_IDEMPOTENCY_WINDOW_MS == 7 * DAY
    late = d.start("e2", "linear", at=T0 + 7 * DAY, idempotency_key="k")
    assert late.events[0].type == n.EXECUTION_CREATED


def test_the_idempotency_scope_includes_the_tenant() -> None:
    d = driver()
    d.start("e1", "linear", tenant_id="acme", idempotency_key="k")

    other_tenant = d.start("e2", "linear", tenant_id="globex", idempotency_key="k")
    same_tenant = d.start("e3", "linear", tenant_id="acme", idempotency_key="k")

    assert other_tenant.events[0].type == n.EXECUTION_CREATED
    assert types(same_tenant.events) == [n.IDEMPOTENCY_HIT]
    assert same_tenant.events[0].execution_id == "e1"


@pytest.mark.parametrize(("first", "second"), [
    # (tenant, flow, key) pairs whose scopes, joined with "/", are the same string
    (("acme/greet", "linear", "k"), ("acme", "greet/linear", "k")),
    ((None, "a", "b/k"), (None, "a/b", "k")),
])
def test_a_scope_that_only_collides_by_its_slashes_never_hands_back_the_other_execution(
    first: tuple[str | None, str, str], second: tuple[str | None, str, str],
) -> None:
    flows = {first[1], second[1]}
    d = KernelDriver(DictEnv([linear_flow(flow) for flow in sorted(flows)]))
    d.start("e1", first[1], tenant_id=first[0], idempotency_key=first[2],
            context={"secret": "s"})

    decision = d.start("e2", second[1], tenant_id=second[0], idempotency_key=second[2])

    [rejected] = decision.events
    assert rejected.type == n.COMMAND_REJECTED
    assert rejected.execution_id == "e2"
    assert rejected.data["code"] == n.REJECT_IDEMPOTENCY_CONFLICT
    assert "e1" not in str(rejected.data)
    assert "e2" not in d.partition.executions
    # the first one's own duplicates still hit it
    again = d.start("e3", first[1], tenant_id=first[0], idempotency_key=first[2])
    assert [(e.type, e.execution_id) for e in again.events] == [(n.IDEMPOTENCY_HIT, "e1")]


@pytest.mark.parametrize(("field", "kwargs"), [
    ("execution id", {"execution_id": "e\x001"}),
    ("tenant id", {"tenant_id": "ac\x00me"}),
    ("idempotency key", {"idempotency_key": "k\x00"}),
    ("command id", {"command_id": "c\x00"}),
    ("parent execution id", {"parent_execution_id": "p\x00"}),
])
def test_a_start_with_a_nul_in_an_identifier_is_refused_naming_it(
    field: str, kwargs: dict[str, Any],
) -> None:
    d = driver()
    execution_id = kwargs.pop("execution_id", "e1")

    decision = d.start(execution_id, "linear", **kwargs)

    [rejected] = decision.events
    assert rejected.data["code"] == n.REJECT_INVALID_COMMAND
    assert rejected.data["reason"] == f"the {field} contains a NUL character (U+0000)"
    assert d.partition.executions == {}
    assert decision.commands == []  # nor is a parent told, with the NUL


def test_any_command_with_a_nul_in_its_command_id_is_refused() -> None:
    # every event it causes carries the command id, which stores keep as text
    d = driver()
    d.start("e1", "linear")

    decision = d.send(cancel_cmd("e1", at=T0 + 1, command_id="c\x00"))

    assert decision.rejected is not None
    assert decision.rejected.data["reason"] == "the command id contains a NUL character (U+0000)"
    assert d.state("e1").status == ExecutionStatus.RUNNING


def test_the_idempotency_scope_includes_the_flow() -> None:
    d = KernelDriver(DictEnv([linear_flow("a"), linear_flow("b")]))
    d.start("e1", "a", idempotency_key="k")

    decision = d.start("e2", "b", idempotency_key="k")

    assert decision.events[0].type == n.EXECUTION_CREATED


def test_an_idempotency_hit_returns_a_finished_execution_too() -> None:
    d = KernelDriver(DictEnv([make_flow("one", [step("s")])]))
    d.start("e1", "one", idempotency_key="k")
    d.result("e1", None, at=T0 + 1, raised={"code": "HANDLER_ERROR", "message": "boom"})
    assert d.state("e1").status == ExecutionStatus.FAILED

    decision = d.start("e2", "one", at=T0 + 2, idempotency_key="k")

    assert types(decision.events) == [n.IDEMPOTENCY_HIT]


# --------------------------------------------------------------------------- refusals


def test_an_unknown_flow_is_rejected_with_flow_not_found() -> None:
    d = driver()

    decision = d.start("e1", "nope")

    rejected = decision.rejected
    assert rejected is not None
    assert types(decision.events) == [n.COMMAND_REJECTED]
    assert rejected.seq == 0
    assert rejected.data["code"] == n.REJECT_FLOW_NOT_FOUND
    assert "'nope'" in rejected.data["reason"]
    assert rejected.data["command_type"] == n.CMD_START
    assert "e1" not in d.partition.executions


def test_an_unknown_version_is_rejected_with_flow_not_found() -> None:
    decision = driver().start("e1", "linear", flow_version="9")

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_FLOW_NOT_FOUND
    assert "'9'" in decision.rejected.data["reason"]


def test_a_draft_flow_is_rejected_unless_allowed() -> None:
    env = DictEnv([make_flow("f", [step("s")], version="1", status="draft")])
    d = KernelDriver(env)

    refused = d.start("e1", "f", flow_version="1")
    allowed = d.start("e2", "f", flow_version="1", allow_unpublished=True)

    assert refused.rejected is not None
    assert refused.rejected.data["code"] == n.REJECT_FLOW_NOT_PUBLISHED
    assert "draft" in refused.rejected.data["reason"]
    assert allowed.rejected is None
    assert d.state("e2").status == ExecutionStatus.RUNNING


def test_an_archived_flow_is_rejected_unless_allowed() -> None:
    env = DictEnv([make_flow("f", [step("s")], version="1", status="archived")])

    decision = KernelDriver(env).start("e1", "f", flow_version="1")

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_FLOW_NOT_PUBLISHED


def test_a_duplicate_execution_id_is_rejected() -> None:
    d = driver()
    d.start("e1", "linear")

    decision = d.start("e1", "linear", at=T0 + 1)

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_EXECUTION_EXISTS
    assert d.state("e1").seq == 3


def test_a_context_that_is_not_an_object_is_rejected() -> None:
    decision = driver().start("e1", "linear", context=[1, 2])

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == n.REJECT_INVALID_COMMAND


def test_a_context_value_over_the_size_limit_is_rejected() -> None:
    limits = {"max_size_bytes": 10}
    decision = driver().start("e1", "linear", context={"big": "x" * 20},
                              options={"limits": limits})

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == "CONTEXT_VALUE_TOO_LARGE"


def test_a_context_too_deep_is_rejected() -> None:
    decision = driver().start("e1", "linear", context={"deep": {"a": {"b": {}}}},
                              options={"limits": {"max_depth": 2}})

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == "CONTEXT_NESTING_LIMIT"


def test_a_context_with_too_many_keys_is_rejected() -> None:
    decision = driver().start("e1", "linear", context={"a": 1, "b": 2, "c": 3},
                              options={"limits": {"max_keys": 2}})

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == "CONTEXT_KEY_LIMIT"


def test_a_context_over_the_total_size_is_rejected() -> None:
    decision = driver().start("e1", "linear", context={"a": "x" * 30, "b": "y" * 30},
                              options={"limits": {"max_total_size_bytes": 50}})

    assert decision.rejected is not None
    assert decision.rejected.data["code"] == "CONTEXT_SIZE_LIMIT"


def test_a_child_whose_start_is_rejected_tells_its_parent() -> None:
    d = driver()

    decision = d.start("child", "nope", parent_execution_id="parent", tenant_id="acme")

    assert decision.rejected is not None
    assert len(decision.commands) == 1
    told = decision.commands[0]
    assert told.type == n.CMD_CHILD_FINISHED
    assert told.execution_id == "parent"
    assert told.tenant_id == "acme"
    assert told.data["child_execution_id"] == "child"
    assert told.data["status"] == "failed"
    assert told.data["error"]["code"] == n.REJECT_FLOW_NOT_FOUND


def test_a_top_level_rejected_start_sends_no_follow_up() -> None:
    decision = driver().start("e1", "nope")

    assert decision.commands == []


def test_a_start_records_parent_metadata_timeout_and_options() -> None:
    d = driver()

    d.start("e1", "linear", parent_execution_id="p", parent_step_id="call",
            metadata={"who": "me"}, timeout={"execution_timeout_ms": 5000},
            options={"record_history": True, "max_steps": 7})

    state = d.state("e1")
    assert state.parent_execution_id == "p"
    assert state.parent_step_id == "call"
    assert state.metadata == {"who": "me"}
    assert state.timeout is not None
    assert state.timeout.execution_timeout_ms == 5000
    assert state.options.record_history is True
    assert state.options.max_steps == 7


def test_a_step_is_started_whatever_handlers_a_process_has() -> None:
    # which handlers exist is the running process's fact, not the log's: decide starts
    # the step, and the process that lacks the handler reports it as the step's result
    env = DictEnv([make_flow("f", [step("s", type="registered-nowhere")])])

    decision = KernelDriver(env).start("e1", "f")

    assert types(decision.events) == [n.EXECUTION_CREATED, n.EXECUTION_STARTED,
                                      n.STEP_STARTED]


def test_decide_on_an_empty_partition_returns_the_new_state_only() -> None:
    partition = PartitionState()
    decision = decide(partition, start_cmd("e1", "linear"), DictEnv([linear_flow()]))

    assert set(decision.states) == {"e1"}
    assert partition.executions == {}
