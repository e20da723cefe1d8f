"""Golden event histories: scripted runs of the kernel, frozen as JSON.

Each ``<scenario>.json`` here holds the exact events ``decide`` emitted for a scripted
sequence of commands (encoded by ``flowmonkey.events.codec.event_to_dict``) and the final
state of every execution involved (``to_execution().model_dump(mode="json")``).
``tests/unit/kernel/test_golden_histories.py`` replays the stored events through
``apply`` and checks the stored states, and re-runs these scripts through ``decide`` and
checks it still emits the stored events: a change in either fails the test.

Rebuild the files ONLY ON PURPOSE — after a deliberate, versioned change to what the
kernel emits — from the repository root::

    .venv/bin/python -m tests.golden.regenerate            # all scenarios
    .venv/bin/python -m tests.golden.regenerate NAME ...   # some of them

then review ``git diff tests/golden`` line by line. Every changed line is a change to
what the log says; executions already on real logs keep the old events, so the old
meaning must stay replayable (add an event version and an upcaster instead of editing
an event's meaning).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from flowmonkey.events.codec import encode_event
from flowmonkey.model.result import Result
from tests.unit.kernel.support import (
    T0,
    DictEnv,
    KernelDriver,
    cancel_cmd,
    make_flow,
    reset_command_ids,
    resume_cmd,
    step,
)

GOLDEN_DIR = Path(__file__).resolve().parent
SECOND = 1000


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    script: Callable[[], KernelDriver]


# --------------------------------------------------------------------------- scripts


def linear_success() -> KernelDriver:
    flow = make_flow("order", [
        step("validate", on_success="price", output_key="validation",
             input={"type": "key", "key": "order"}),
        step("price", on_success="confirm", output_key="pricing",
             input={"type": "template", "template": {"sku": "${order.sku}",
                                                     "qty": "${order.qty}"}}),
        step("confirm", output_key="confirmation",
             input={"type": "template", "template": "order ${order.sku} x${order.qty}"}),
    ])
    d = KernelDriver(DictEnv([flow]))
    d.start("order-1", "order", tenant_id="acme", context={"order": {"sku": "A-1", "qty": 2}},
            options={"record_history": True}, metadata={"source": "golden"})
    d.result("order-1", Result.success({"valid": True}), at=T0 + 5, duration_ms=5)
    d.result("order-1", Result.success({"total": 19.98, "currency": "EUR"}), at=T0 + 12,
             duration_ms=7)
    d.result("order-1", Result.success("confirmed"), at=T0 + 20, duration_ms=8)
    return d


def retry_then_success() -> KernelDriver:
    flow = make_flow("fetch", [
        step("call", on_success="store", output_key="response",
             retry={"max_attempts": 3, "backoff_ms": SECOND, "backoff_multiplier": 2,
                    "retry_on": ["HTTP_503"]}),
        step("store"),
    ])
    d = KernelDriver(DictEnv([flow]))
    d.start("fetch-1", "fetch", options={"record_history": True})
    d.result("fetch-1", Result.failure("HTTP_503", "unavailable"), at=T0 + 10)
    d.fire("fetch-1")  # at T0 + 1010
    d.result("fetch-1", Result.failure("HTTP_503", "still unavailable"), at=T0 + 1020)
    d.fire("fetch-1")  # backoff doubled: at T0 + 3020
    d.result("fetch-1", Result.success({"status": 200}), at=T0 + 3030)
    d.result("fetch-1", Result.success(), at=T0 + 3040)
    return d


def wait_signal_resume() -> KernelDriver:
    flow = make_flow("approval", [
        step("cool-off", on_success="ask"),
        step("ask", on_success="never", on_resume="apply", output_key="decision"),
        step("never"),
        step("apply", output_key="applied"),
    ])
    d = KernelDriver(DictEnv([flow]))
    d.start("approval-1", "approval", context={"request": "raise"})
    d.result("approval-1", Result.wait(60 * SECOND, reason="cool-off"), at=T0 + 1)
    d.fire("approval-1")
    d.result("approval-1", Result.wait_for_signal("manager approval", timeout_ms=3600 * SECOND,
                                                  output={"asked": "manager"}),
             at=T0 + 60 * SECOND + 5, resume_token="tok-approve")
    d.send(resume_cmd("approval-1", "tok-approve", {"approved": True, "by": "kim"},
                      at=T0 + 120 * SECOND))
    d.result("approval-1", Result.success({"ok": True}), at=T0 + 120 * SECOND + 9)
    return d


def cancel_with_token() -> KernelDriver:
    flow = make_flow("form", [step("collect", on_success="thank", output_key="form"),
                              step("thank")])
    d = KernelDriver(DictEnv([flow]))
    d.start("form-1", "form", tenant_id="acme", timeout={"wait_timeout_ms": 86_400 * SECOND})
    d.result("form-1", Result.wait_for_signal("form submission"), at=T0 + 3,
             resume_token="tok-form")
    d.send(cancel_cmd("form-1", at=T0 + 30 * SECOND, source="user", reason="no longer needed",
                      tenant_id="acme"))
    return d


def child_start_finish() -> KernelDriver:
    parent = make_flow("onboard", [
        step("create-account", on_success="welcome", output_key="account",
             input={"type": "keys", "keys": ["email"]}),
        step("welcome", on_success="done", output_key="welcome"),
        step("done"),
    ])
    child = make_flow("send-email", [
        step("render", on_success="send", output_key="body"),
        step("send", output_key="receipt"),
    ])
    d = KernelDriver(DictEnv([parent, child]))
    d.start("onboard-1", "onboard", tenant_id="acme", context={"email": "ada@example.com"})
    d.result("onboard-1", Result.success({"id": 42}), at=T0 + 4)
    d.result("onboard-1", Result.start_child("send-email", {"to": "ada@example.com"}),
             at=T0 + 8, child_execution_id="email-1")
    d.deliver()  # the child's start command
    d.result("email-1", Result.success("<p>Welcome</p>"), at=T0 + 15)
    d.result("email-1", Result.success({"message_id": "m-1"}), at=T0 + 25)
    d.deliver()  # child.finished to the parent
    d.result("onboard-1", Result.success(), at=T0 + 40)
    return d


def failure_with_pipes() -> KernelDriver:
    pipes: list[dict[str, Any]] = [
        {"id": "charges", "step_id": "charge", "table_id": "charges",
         "mappings": [{"source_path": "charge_id", "column_id": "id"}],
         "static_values": {"status": "ok"}},
        {"id": "declines", "step_id": "charge", "table_id": "charges", "on": "failure",
         "mappings": [{"source_path": "error.code", "column_id": "reason"}],
         "static_values": {"status": "declined"}},
        {"id": "audit", "step_id": "charge", "table_id": "audit", "on": "any",
         "mappings": [{"source_path": "error.message", "column_id": "message"}]},
        {"id": "off", "step_id": "charge", "table_id": "audit", "on": "any", "enabled": False},
        {"id": "refunds", "step_id": "refund", "table_id": "refunds",
         "mappings": [{"source_path": "refund_id", "column_id": "id"}]},
    ]
    flow = make_flow("payment", [
        step("charge", on_success="ship", on_failure="refund",
             retry={"max_attempts": 2, "retry_on": ["TIMEOUT"]}),
        step("ship"),
        step("refund", on_success="notify", output_key="refund"),
        step("notify"),
    ], pipes=pipes)
    d = KernelDriver(DictEnv([flow]))
    d.start("payment-1", "payment", context={"amount": 10})
    d.result("payment-1", Result.failure("TIMEOUT", "gateway timeout"), at=T0 + 30)
    d.result("payment-1", Result.failure("CARD_DECLINED", "card declined", {"bank": "X"}),
             at=T0 + 60)
    d.result("payment-1", Result.success({"refund_id": "r-1"}), at=T0 + 70)
    d.result("payment-1", None, at=T0 + 80,
             raised={"code": "HANDLER_ERROR", "message": "smtp down"})
    return d


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("linear_success", "three steps, templates and history, completes",
             linear_success),
    Scenario("retry_then_success", "two failures with growing backoff, then success",
             retry_then_success),
    Scenario("wait_signal_resume", "a timed wait, then a signal wait resumed with a token",
             wait_signal_resume),
    Scenario("cancel_with_token", "a signal wait cancelled by the user; its token is revoked",
             cancel_with_token),
    Scenario("child_start_finish", "a sub-flow child started, completed, and its parent "
             "resumed with its result", child_start_finish),
    Scenario("failure_with_pipes", "retry, failure to on_failure with pipe rows, then a "
             "handler exception fails the execution", failure_with_pipes),
]}


# --------------------------------------------------------------------------- documents


def events_json(d: KernelDriver) -> list[dict[str, Any]]:
    """The adopted events exactly as the log stores them."""
    encoded: list[dict[str, Any]] = [orjson.loads(encode_event(e)) for e in d.events]
    return encoded


def states_json(d: KernelDriver) -> dict[str, Any]:
    # the full states, folded from the events (the partition keeps ended ones retired)
    return {execution_id: d.state(execution_id).to_execution().model_dump(mode="json")
            for execution_id in sorted(d.partition.executions)}


def build(name: str) -> dict[str, Any]:
    """The golden document for one scenario, computed now."""
    scenario = SCENARIOS[name]
    reset_command_ids()
    d = scenario.script()
    return {
        "scenario": name,
        "description": scenario.description,
        "events": events_json(d),
        "final_states": states_json(d),
    }


def path_of(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    stored: dict[str, Any] = orjson.loads(path_of(name).read_bytes())
    return stored


def write(name: str) -> Path:
    path = path_of(name)
    path.write_bytes(orjson.dumps(build(name), option=orjson.OPT_INDENT_2) + b"\n")
    return path


def main(argv: list[str]) -> int:
    names = argv or sorted(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return 2
    for name in names:
        print(f"wrote {write(name)}")
    print("review the changes: git diff tests/golden")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
