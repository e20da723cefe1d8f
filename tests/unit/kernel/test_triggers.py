"""Triggers in the kernel: every transition of a trigger entity (register, enable,
disable, fire, a schedule's tick, a run's end), the starts they send, and the fires
that event triggers get from other executions' events."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.events.types import TriggerRegistered, payload
from flowmonkey.kernel import cron
from flowmonkey.kernel import triggers as kt
from flowmonkey.kernel.decide import Decision
from flowmonkey.kernel.trigger_state import (
    TriggerState,
    trigger_definition,
    trigger_from_json,
    trigger_to_json,
)
from flowmonkey.model.result import Result
from flowmonkey.model.trigger import Condition, Trigger, entity_id
from flowmonkey.processors.snapshot_codec import decode_partition_state, encode_snapshot_state

from .support import T0, DictEnv, KernelDriver, make_flow, start_cmd, step, types

MINUTE = 60_000
_ids = itertools.count(1)


def cmd(type: str, trigger_id: str, at: int = T0, tenant_id: str | None = None,
        **data: Any) -> Command:
    return Command(type=type, command_id=f"{type}#{next(_ids)}",
                   execution_id=entity_id(trigger_id), timestamp_ms=at, tenant_id=tenant_id,
                   data=data)


def webhook(id: str = "hook", **more: Any) -> Trigger:
    return Trigger.model_validate({"id": id, "kind": "webhook", "flowId": "invoice",
                                   "webhook": {"secret": "hook-secret"}, **more})


def schedule(id: str = "tick", cron_: str = "* * * * *", **settings: Any) -> Trigger:
    return Trigger.model_validate({"id": id, "kind": "schedule", "flowId": "invoice",
                                   "schedule": {"cron": cron_, **settings}})


def driver(*triggers: Trigger) -> KernelDriver:
    flows = [make_flow("invoice", [step("bill")]), make_flow("order", [step("take")])]
    return KernelDriver(DictEnv(flows, triggers))


def register(d: KernelDriver, trigger: Trigger, at: int = T0, **data: Any) -> Decision:
    return d.send(cmd(n.CMD_TRIGGER_REGISTER, trigger.id, at,
                      definition=trigger_definition(trigger), **data))


def fire(d: KernelDriver, trigger_id: str, arrival: dict[str, Any], key: str = "d-1",
         at: int = T0, **data: Any) -> Decision:
    return d.send(cmd(n.CMD_TRIGGER_FIRE, trigger_id, at,
                      source={"kind": "webhook", "key": key}, arrival=arrival, **data))


def state(d: KernelDriver, trigger_id: str) -> TriggerState:
    return d.partition.triggers[entity_id(trigger_id)]


def rejected(decision: Decision) -> str:
    event = decision.rejected
    assert event is not None, types(decision.events)
    return str(event.data["code"])


def started(decision: Decision) -> list[Command]:
    return [c for c in decision.commands if c.type == n.CMD_START]


# --------------------------------------------------------------------------- register


def test_a_new_trigger_is_registered_with_its_definition_and_a_seq_of_its_own() -> None:
    d = driver()
    decision = register(d, webhook(), by="deploy")
    assert types(decision.events) == [n.TRIGGER_REGISTERED]
    event = decision.events[0]
    assert (event.execution_id, event.seq) == ("trigger:hook", 1)
    data = payload(event)
    assert isinstance(data, TriggerRegistered)
    assert data.changed is False
    assert data.by == "deploy"
    ts = state(d, "hook")
    assert ts.enabled
    assert ts.definition["flowId"] == "invoice"
    assert ts.next_fire_at is None


def test_an_identical_registration_is_ignored_and_a_changed_one_recorded() -> None:
    d = driver()
    register(d, webhook())
    assert register(d, webhook()).ignored == "identical trigger definition"
    changed = register(d, webhook(description="now with words"))
    assert types(changed.events) == [n.TRIGGER_REGISTERED]
    assert changed.events[0].data["changed"] is True
    assert state(d, "hook").definition["description"] == "now with words"
    assert state(d, "hook").seq == 2


def test_a_pause_survives_a_redeploy_and_a_new_disabled_trigger_starts_disabled() -> None:
    d = driver()
    register(d, schedule())
    d.send(cmd(n.CMD_TRIGGER_DISABLE, "tick", by="ops", reason="maintenance"))
    register(d, schedule(id="tick", cron_="*/5 * * * *"))
    ts = state(d, "tick")
    assert not ts.enabled
    assert ts.next_fire_at is None
    assert kt.trigger_timers_for(ts) == []
    register(d, Trigger.model_validate({**trigger_definition(webhook("off")), "enabled": False}))
    assert not state(d, "off").enabled


def test_a_schedule_registered_gets_its_next_tick_after_the_command() -> None:
    d = driver()
    register(d, schedule(cron_="*/5 * * * *"), at=T0)
    ts = state(d, "tick")
    assert ts.next_fire_at == cron.next_after("*/5 * * * *", "UTC", T0)
    assert kt.trigger_timers_for(ts) == [(ts.next_fire_at, kt.TRIGGER_TICK)]


@pytest.mark.parametrize(("definition", "named"), [
    ({"id": "bad", "kind": "schedule", "flowId": "f", "schedule": {"cron": "61 * * * *"}},
     "schedule.cron"),
    ({"id": "bad", "kind": "schedule", "flowId": "f",
      "schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
    ({"id": "bad", "kind": "event", "flowId": "f", "event": {"flowId": "f"}}, "event.flowId"),
    ({"id": "bad", "kind": "webhook", "flowId": "f"}, "a webhook trigger needs its settings"),
    ({"id": "bad", "kind": "webhook", "flowId": "f", "webhook": {"secret": "s"},
      "context": {"type": "nope"}}, "context"),
])
def test_a_definition_that_cannot_be_used_is_refused_naming_the_trigger_and_field(
        definition: dict[str, Any], named: str) -> None:
    d = driver()
    decision = d.send(cmd(n.CMD_TRIGGER_REGISTER, "bad", definition=definition))
    assert rejected(decision) == n.REJECT_INVALID_COMMAND
    reason = decision.events[0].data["reason"]
    assert "'bad'" in reason
    assert named in reason
    assert "trigger:bad" not in d.partition.triggers


def test_a_definition_sent_to_another_triggers_entity_is_refused() -> None:
    d = driver()
    decision = d.send(cmd(n.CMD_TRIGGER_REGISTER, "other",
                          definition=trigger_definition(webhook())))
    assert rejected(decision) == n.REJECT_INVALID_COMMAND


# --------------------------------------------------------------------------- enable/disable


def test_disable_and_enable_record_who_and_why_and_a_repeat_changes_nothing() -> None:
    d = driver()
    register(d, schedule())
    off = d.send(cmd(n.CMD_TRIGGER_DISABLE, "tick", by="ops", reason="incident"))
    assert types(off.events) == [n.TRIGGER_DISABLED]
    assert off.events[0].data == {"by": "ops", "reason": "incident", "changed": True}
    again = d.send(cmd(n.CMD_TRIGGER_DISABLE, "tick", by="ops"))
    assert again.events[0].data["changed"] is False
    assert not state(d, "tick").enabled
    later = T0 + 90 * MINUTE + 30_000
    on = d.send(cmd(n.CMD_TRIGGER_ENABLE, "tick", at=later, by="ops"))
    assert types(on.events) == [n.TRIGGER_ENABLED]
    assert on.events[0].data["changed"] is True
    # enabling computes the next tick from now: what was missed while paused is not
    # caught up
    assert state(d, "tick").next_fire_at == cron.next_after("* * * * *", "UTC", later)
    before = state(d, "tick").next_fire_at
    repeat = d.send(cmd(n.CMD_TRIGGER_ENABLE, "tick", at=later + 5_000))
    assert repeat.events[0].data["changed"] is False
    assert state(d, "tick").next_fire_at == before


@pytest.mark.parametrize("type_", [n.CMD_TRIGGER_ENABLE, n.CMD_TRIGGER_DISABLE,
                                   n.CMD_TRIGGER_FIRE])
def test_commands_for_an_unknown_trigger_are_refused_not_found(type_: str) -> None:
    d = driver()
    data: dict[str, Any] = {"source": {"kind": "manual", "key": "k"}} \
        if type_ == n.CMD_TRIGGER_FIRE else {}
    assert rejected(d.send(cmd(type_, "ghost", **data))) == kt.REJECT_TRIGGER_NOT_FOUND


def test_another_tenants_command_does_not_see_the_trigger() -> None:
    d = driver()
    register(d, webhook(tenantId="acme"))
    assert rejected(d.send(cmd(n.CMD_TRIGGER_DISABLE, "hook", tenant_id="other"))) == \
        kt.REJECT_TRIGGER_NOT_FOUND
    assert d.send(cmd(n.CMD_TRIGGER_DISABLE, "hook", tenant_id="acme")).rejected is None


# --------------------------------------------------------------------------- fire


def test_a_fire_without_a_mapping_starts_the_flow_with_the_body() -> None:
    d = driver()
    register(d, webhook())
    decision = fire(d, "hook", {"body": {"order": 7}, "headers": {}}, key="delivery-1")
    assert types(decision.events) == [n.TRIGGER_FIRED]
    fired = decision.events[0].data
    expected_id = kt.triggered_execution_id("hook", "webhook", "delivery-1")
    assert fired["execution_id"] == expected_id
    assert expected_id.startswith("trg-")
    assert fired["source"] == {"kind": "webhook", "key": "delivery-1"}
    [start] = started(decision)
    assert start.execution_id == expected_id
    assert start.data["context"] == {"order": 7}
    assert start.data["metadata"] == {"trigger": {"id": "hook", "kind": "webhook",
                                                  "source": "delivery-1"}}
    assert "idempotency_key" not in start.data
    payload(decision.events[0])  # the schema holds what the kernel emits


def test_selectors_and_templates_map_the_arrival_and_the_idempotency_key() -> None:
    d = driver()
    register(d, webhook(context={"type": "template",
                                 "template": {"customer": "${body.customer.id}",
                                              "note": "order ${body.n} paid"}},
                        idempotencyKey={"type": "path", "path": "body.n"}))
    [start] = started(fire(d, "hook", {"body": {"customer": {"id": "c-1"}, "n": 12}}))
    assert start.data["context"] == {"customer": "c-1", "note": "order 12 paid"}
    assert start.data["idempotency_key"] == "12"


def test_a_value_that_is_not_an_object_is_wrapped() -> None:
    d = driver()
    register(d, webhook(context={"type": "path", "path": "body.items"}))
    [start] = started(fire(d, "hook", {"body": {"items": [1, 2]}}))
    assert start.data["context"] == {"value": [1, 2]}


def test_a_mapping_error_fails_the_fire_naming_the_trigger_and_field() -> None:
    d = driver()
    register(d, webhook(idempotencyKey={"type": "path", "path": "body"}))
    decision = fire(d, "hook", {"body": {"a": 1}})
    assert types(decision.events) == [n.TRIGGER_FAILED]
    assert not decision.commands
    data = decision.events[0].data
    assert data["code"] == kt.MAPPING_ERROR
    assert "'hook'" in data["message"]
    assert "idempotencyKey" in data["message"]
    assert state(d, "hook").failed == 1


def test_a_context_over_the_limits_is_a_mapping_error() -> None:
    d = driver()
    register(d, webhook())
    decision = fire(d, "hook", {"body": {"big": "x" * 2_000_000}})
    assert decision.events[0].data["code"] == kt.MAPPING_ERROR
    assert "context" in decision.events[0].data["message"]


def test_a_disabled_trigger_fails_the_fire() -> None:
    d = driver()
    register(d, webhook())
    d.send(cmd(n.CMD_TRIGGER_DISABLE, "hook"))
    decision = fire(d, "hook", {"body": {}})
    assert types(decision.events) == [n.TRIGGER_FAILED]
    assert not decision.commands
    assert decision.events[0].data["code"] == kt.TRIGGER_DISABLED


def test_a_failure_found_by_the_sender_is_recorded_without_a_start() -> None:
    d = driver()
    register(d, webhook())
    decision = fire(d, "hook", {}, failure={"code": "BAD_SIGNATURE", "message": "no"})
    assert decision.events[0].data == {"code": "BAD_SIGNATURE", "message": "no",
                                       "source": {"kind": "webhook", "key": "d-1"}}
    assert not decision.commands


def test_a_retried_delivery_maps_to_the_same_execution_started_once() -> None:
    d = driver()
    register(d, webhook())
    first = fire(d, "hook", {"body": {"n": 1}}, key="delivery-9")
    d.deliver()
    second = fire(d, "hook", {"body": {"n": 1}}, key="delivery-9")
    assert started(first)[0].execution_id == started(second)[0].execution_id
    [refusal] = d.deliver()
    assert rejected(refusal) == n.REJECT_EXECUTION_EXISTS
    executions = [e for e in d.events if e.type == n.EXECUTION_CREATED]
    assert len(executions) == 1


def test_a_run_that_ends_is_reported_to_its_trigger() -> None:
    d = driver()
    register(d, webhook())
    [start] = started(fire(d, "hook", {"body": {}}))
    d.deliver()
    assert state(d, "hook").active_runs == (start.execution_id,)
    ended = d.result(start.execution_id, Result.success({"ok": True}), at=T0 + 10)
    [report] = [c for c in ended.commands if c.type == n.CMD_TRIGGER_RUN_ENDED]
    assert report.execution_id == "trigger:hook"
    assert report.data == {"execution_id": start.execution_id, "status": "completed"}
    d.deliver()
    assert state(d, "hook").active_runs == ()


def test_execution_ids_starting_with_trigger_are_refused_for_executions() -> None:
    d = driver()
    decision = d.send(start_cmd("trigger:sneaky", "invoice"))
    assert rejected(decision) == n.REJECT_INVALID_COMMAND
    assert "reserved for triggers" in decision.events[0].data["reason"]
    misplaced = d.send(Command(type=n.CMD_TRIGGER_DISABLE, command_id="x", execution_id="e-1",
                               timestamp_ms=T0, data={}))
    assert rejected(misplaced) == n.REJECT_INVALID_COMMAND


@pytest.mark.parametrize("source", [None, {"kind": "carrier-pigeon", "key": "k"},
                                    {"kind": "webhook", "key": ""}, "webhook"])
def test_a_fire_without_a_proper_source_is_refused(source: Any) -> None:
    d = driver()
    register(d, webhook())
    decision = d.send(cmd(n.CMD_TRIGGER_FIRE, "hook", source=source, arrival={}))
    assert rejected(decision) == n.REJECT_INVALID_COMMAND


# --------------------------------------------------------------------------- schedules


def tick(d: KernelDriver, trigger_id: str, at: int | None = None) -> Decision:
    ts = state(d, trigger_id)
    [(due, kind)] = kt.trigger_timers_for(ts)
    return d.send(Command(type=n.CMD_TIMER, command_id=f"timer:{ts.entity_id}:{kind}:{due}",
                          execution_id=ts.entity_id, timestamp_ms=due if at is None else at,
                          data={"due_at": due, "kind": kind}))


def test_a_due_tick_fires_once_and_sets_the_next() -> None:
    d = driver()
    register(d, schedule())
    due = state(d, "tick").next_fire_at
    assert due is not None
    decision = tick(d, "tick")
    assert types(decision.events) == [n.TRIGGER_FIRED]
    fired = decision.events[0].data
    assert fired["tick"] == due
    assert fired["next_fire_at"] == due + MINUTE
    assert fired["idempotency_key"] == f"trigger:tick@{cron.to_iso(due)}"
    [start] = started(decision)
    assert start.data["metadata"]["trigger"] == {"id": "tick", "kind": "schedule",
                                                 "source": str(due)}
    assert start.data["context"]["scheduledAtMs"] == due
    assert start.data["idempotency_key"] == fired["idempotency_key"]
    # the same timer again (a redelivery, a second processor) is stale: once per tick
    again = d.send(Command(type=n.CMD_TIMER, command_id="timer-again", execution_id="trigger:tick",
                           timestamp_ms=due + 1, data={"due_at": due, "kind": kt.TRIGGER_TICK}))
    assert again.ignored == "stale timer"


def test_a_timer_before_its_time_is_stale() -> None:
    d = driver()
    register(d, schedule())
    due = state(d, "tick").next_fire_at
    assert due is not None
    assert tick(d, "tick", at=due - 1).ignored == "stale timer"


def outage(d: KernelDriver, trigger_id: str, minutes: int) -> tuple[int, Decision]:
    """The first tick's timer fires ``minutes`` (and 10 s) late."""
    due = state(d, trigger_id).next_fire_at
    assert due is not None
    return due, tick(d, trigger_id, at=due + minutes * MINUTE + 10_000)


def fired_ticks(decision: Decision) -> list[int]:
    return [e.data["tick"] for e in decision.events if e.type == n.TRIGGER_FIRED]


def test_catch_up_once_fires_the_latest_missed_tick_and_skips_the_rest() -> None:
    d = driver()
    register(d, schedule(catchUp="once"))
    due, decision = outage(d, "tick", 30)
    assert types(decision.events) == [n.TRIGGER_SKIPPED, n.TRIGGER_FIRED]
    skipped = decision.events[0].data
    assert skipped["reason"] == "catch_up"
    assert skipped["since"] == due
    assert skipped["tick"] == due + 29 * MINUTE
    assert fired_ticks(decision) == [due + 30 * MINUTE]
    assert state(d, "tick").next_fire_at == due + 31 * MINUTE


def test_catch_up_skip_fires_nothing_after_a_long_outage_but_a_slightly_late_tick() -> None:
    d = driver()
    register(d, schedule(cron_="0 * * * *", catchUp="skip"))
    due = state(d, "tick").next_fire_at
    assert due is not None
    # the ticks at due .. due + 3 h were missed; the latest is 30 minutes late
    decision = tick(d, "tick", at=due + 210 * MINUTE)
    assert types(decision.events) == [n.TRIGGER_SKIPPED]
    assert decision.events[0].data["since"] == due
    assert decision.events[0].data["tick"] == due + 180 * MINUTE
    assert decision.events[0].data["next_fire_at"] == due + 240 * MINUTE
    assert not decision.commands
    # a tick fired 10 s late (a restart) is within the grace: it fires
    late = tick(d, "tick", at=state(d, "tick").next_fire_at + 10_000)  # type: ignore[operator]
    assert types(late.events) == [n.TRIGGER_FIRED]


def test_catch_up_all_fires_every_missed_tick_up_to_the_limit() -> None:
    d = driver()
    register(d, schedule(catchUp="all", catchUpLimit=10))
    due, decision = outage(d, "tick", 5)
    assert fired_ticks(decision) == [due + i * MINUTE for i in range(6)]
    assert len({c.execution_id for c in started(decision)}) == 6
    due, decision = outage(d, "tick", 30)
    assert types(decision.events)[0] == n.TRIGGER_SKIPPED
    assert fired_ticks(decision) == [due + i * MINUTE for i in range(21, 31)]
    assert decision.events[0].data["tick"] == due + 20 * MINUTE


def test_overlap_skip_skips_a_tick_while_a_run_is_active() -> None:
    d = driver()
    register(d, schedule(overlap="skip"))
    [start] = started(tick(d, "tick"))
    d.deliver()
    skipped = tick(d, "tick")
    assert types(skipped.events) == [n.TRIGGER_SKIPPED]
    assert skipped.events[0].data["reason"] == "overlap"
    assert skipped.events[0].data["active"] == start.execution_id
    d.result(start.execution_id, Result.success(), at=T0 + 3 * MINUTE)
    d.deliver()
    assert types(tick(d, "tick").events) == [n.TRIGGER_FIRED]


def test_overlap_allow_fires_while_a_run_is_active() -> None:
    d = driver()
    register(d, schedule())
    started(tick(d, "tick"))
    d.deliver()
    assert types(tick(d, "tick").events) == [n.TRIGGER_FIRED]
    assert len(state(d, "tick").active_runs) == 2


# --------------------------------------------------------------------------- events


def event_trigger(**event: Any) -> Trigger:
    return Trigger.model_validate({
        "id": "bill-orders", "kind": "event", "flowId": "invoice",
        "event": {"flowId": "order", **event},
        "context": {"type": "template", "template": {"orderId": "${execution.id}",
                                                     "total": "${execution.context.total}"}}})


def run_order(d: KernelDriver, execution_id: str, total: int) -> Decision:
    d.start(execution_id, "order", context={"total": total})
    return d.result(execution_id, Result.success(), at=T0 + 1)


def test_an_execution_event_fires_the_event_triggers_whose_conditions_hold() -> None:
    trigger = event_trigger(when=[{"path": "execution.context.total", "operator": "gt",
                                   "value": 0}])
    d = driver(trigger)
    register(d, trigger)
    done = run_order(d, "o-1", 5)
    [fire_cmd] = [c for c in done.commands if c.type == n.CMD_TRIGGER_FIRE]
    assert fire_cmd.execution_id == "trigger:bill-orders"
    completed = next(e for e in done.events if e.type == n.EXECUTION_COMPLETED)
    assert fire_cmd.data["source"] == {"kind": "event", "key": f"o-1:{completed.seq}"}
    assert fire_cmd.data["arrival"]["event"]["type"] == n.EXECUTION_COMPLETED
    decisions = d.deliver()
    [start] = [c for decision in decisions for c in decision.commands
               if c.type == n.CMD_START]
    assert start.data["context"] == {"orderId": "o-1", "total": 5}
    assert start.data["metadata"]["trigger"]["depth"] == 1
    none = run_order(d, "o-2", 0)
    assert not [c for c in none.commands if c.type == n.CMD_TRIGGER_FIRE]


def test_a_chain_of_event_triggers_stops_at_the_depth_limit() -> None:
    trigger = event_trigger()
    d = driver(trigger)
    register(d, trigger)
    arrival = {"event": {"type": n.EXECUTION_COMPLETED}, "execution": {
        "id": "o-9", "context": {}, "metadata": {"trigger": {"depth": kt.MAX_TRIGGER_DEPTH}}}}
    decision = d.send(cmd(n.CMD_TRIGGER_FIRE, "bill-orders",
                          source={"kind": "event", "key": "o-9:4"}, arrival=arrival))
    assert decision.events[0].data["code"] == kt.TRIGGER_DEPTH_EXCEEDED


@pytest.mark.parametrize(("operator", "value", "actual", "holds"), [
    ("eq", 1, 1, True), ("eq", 1, True, False), ("eq", "1", 1, False),
    ("neq", 1, 2, True), ("gt", 0, 5, True), ("gt", 0, "5", False), ("gte", 5, 5, True),
    ("lt", 10, 5, True), ("lte", 4, 5, False), ("contains", "b", "abc", True),
    ("contains", 2, [1, 2], True), ("contains", "k", {"k": 1}, True),
    ("exists", None, 0, True), ("exists", False, 0, False), ("gt", None, 1, False),
])
def test_conditions_compare_without_coercion(operator: str, value: Any, actual: Any,
                                             holds: bool) -> None:
    condition = Condition.model_validate({"path": "a.b", "operator": operator, "value": value})
    assert kt.holds(condition, {"a": {"b": actual}}) is holds


def test_a_missing_path_holds_only_for_neq_and_exists_false() -> None:
    for operator, value, holds in (("eq", None, False), ("neq", 1, True),
                                   ("exists", None, False), ("exists", False, True)):
        condition = Condition.model_validate({"path": "gone", "operator": operator,
                                              "value": value})
        assert kt.holds(condition, {}) is holds


# --------------------------------------------------------------------------- stored forms


def test_trigger_state_survives_its_json_and_a_snapshot() -> None:
    d = driver()
    register(d, schedule(overlap="skip"))
    tick(d, "tick")
    ts = state(d, "tick")
    assert trigger_from_json(trigger_to_json(ts)) == ts
    data = encode_snapshot_state(d.partition, topic="t", partition=0, events_offset=5,
                                 anchor_crc=1)
    restored = decode_partition_state(data, topic="t", partition=0, events_offset=5).state
    assert restored.triggers == d.partition.triggers
