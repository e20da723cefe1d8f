"""``decide`` is pure: it never mutates its input, the same input gives the same events,
and folding ``apply`` over the events it emits gives exactly the state it returned (F2)."""

from __future__ import annotations

import ast
import copy
import dataclasses
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from flowmonkey import kernel
from flowmonkey.events import envelope
from flowmonkey.events.envelope import Command
from flowmonkey.kernel.apply import replay
from flowmonkey.kernel.decide import decide
from flowmonkey.kernel.timers import next_timer
from flowmonkey.model.result import Result, StepError, StepResult

from .support import (
    T0,
    DictEnv,
    KernelDriver,
    cancel_cmd,
    child_finished_cmd,
    make_flow,
    result_cmd,
    resume_cmd,
    revoke_cmd,
    start_cmd,
    step,
    timer_cmd,
)

PIPES = [{"id": "p", "step_id": "s", "table_id": "t", "on": "any",
          "mappings": [{"source_path": "v", "column_id": "v"}]}]


def env() -> DictEnv:
    return DictEnv([
        make_flow("f", [step("s", on_success="w", output_key="s_out",
                             retry={"max_attempts": 2, "backoff_ms": 50}),
                        step("w", on_success="call", output_key="signal"),
                        step("call", on_success="end", output_key="child"),
                        step("end")], pipes=PIPES),
        make_flow("kid", [step("k")]),
    ])


def scenario() -> KernelDriver:
    """One execution driven through most decisions, a step at a time, kept unchecked so
    each test below can check the step it is about itself."""
    d = KernelDriver(env(), check=False)
    d.start("e1", "f", context={"nested": {"a": [1, 2]}}, options={"record_history": True},
            timeout={"execution_timeout_ms": 60_000})
    return d


def next_commands(d: KernelDriver) -> list[Callable[[], Command]]:
    """The commands that drive ``scenario`` forward, one per stage, built from state."""
    def attempt() -> str | None:
        return d.state("e1").attempt_id

    def due() -> Command:
        timer = next_timer(d.state("e1"))
        assert timer is not None
        return timer_cmd("e1", timer[0], timer[1])

    return [
        lambda: result_cmd("e1", attempt(), Result.failure("TEMP", "x"), at=T0 + 1,
                           writes=[("nested.b", 1)]),
        due,
        lambda: result_cmd("e1", attempt(), Result.success({"v": 1}), at=T0 + 60),
        lambda: result_cmd("e1", attempt(), Result.wait_for_signal(timeout_ms=10_000),
                           at=T0 + 70, resume_token="tok"),
        lambda: resume_cmd("e1", "tok", {"ok": True}, at=T0 + 80),
        lambda: result_cmd("e1", attempt(), Result.start_child("kid", {"n": 1}), at=T0 + 90,
                           child_execution_id="c1"),
        lambda: child_finished_cmd("e1", "c1", "completed", at=T0 + 100, context={"n": 2},
                                   flow_id="kid"),
        lambda: result_cmd("e1", attempt(), Result.success(), at=T0 + 110),
    ]


def probes() -> list[Callable[[], Command]]:
    """Extra commands tried (and not adopted) at every stage: refusals and cancels too."""
    return [
        lambda: cancel_cmd("e1", at=T0 + 5, reason="probe"),
        lambda: revoke_cmd("e1", "tok", at=T0 + 5),
        lambda: resume_cmd("e1", "wrong", None, at=T0 + 5),
        lambda: start_cmd("e2", "f", at=T0 + 5),
        lambda: start_cmd("e1", "f", at=T0 + 5),
        lambda: timer_cmd("e1", T0 + 60_000, "execution_timeout"),
        lambda: child_finished_cmd("e1", "c1", "failed", at=T0 + 5,
                                   error={"code": "KID", "message": "kid broke"}),
    ]


def every_decision() -> list[Any]:
    """(state, command) pairs covering the scenario's stages and the probes at each."""
    pairs: list[Any] = []
    d = scenario()
    for stage, make in enumerate(next_commands(d)):
        for number, probe in enumerate(probes()):
            command = probe()
            pairs.append(pytest.param(copy.deepcopy(d), command,
                                      id=f"stage{stage}-probe{number}-{command.type}"))
        attempt_id = d.state("e1").attempt_id
        if attempt_id is not None:
            # a failure that names its next step itself (the original's nextStepOverride)
            command = result_cmd("e1", attempt_id, StepResult(
                "failure", error=StepError("BAD", "x"), next_step="end", has_next_step=True),
                at=T0 + 5)
            pairs.append(pytest.param(copy.deepcopy(d), command,
                                      id=f"stage{stage}-probe-failure-override"))
        command = make()
        pairs.append(pytest.param(copy.deepcopy(d), command, id=f"stage{stage}-{command.type}"))
        d.send(command)
    return pairs


DECISIONS = every_decision()


@pytest.mark.parametrize(("d", "command"), DECISIONS)
def test_decide_does_not_mutate_the_partition_or_its_executions(
        d: KernelDriver, command: Command) -> None:
    before = copy.deepcopy(d.partition)
    originals = dict(d.partition.executions)
    snapshots = {k: dataclasses.asdict(v) for k, v in originals.items()}

    decision = decide(d.partition, command, d.env)

    assert d.partition == before
    for execution_id, state in originals.items():
        assert d.partition.executions[execution_id] is state
        assert dataclasses.asdict(state) == snapshots[execution_id]
        if execution_id in decision.states:
            assert decision.states[execution_id] is not state


@pytest.mark.parametrize(("d", "command"), DECISIONS)
def test_decide_is_deterministic(d: KernelDriver, command: Command) -> None:
    first = decide(d.partition, command, d.env)
    second = decide(copy.deepcopy(d.partition), command, d.env)

    assert first.events == second.events
    assert first.commands == second.commands
    assert first.ignored == second.ignored
    assert {k: dataclasses.asdict(v) for k, v in first.states.items()} == {
        k: dataclasses.asdict(v) for k, v in second.states.items()}


@pytest.mark.parametrize(("d", "command"), DECISIONS)
def test_replaying_the_events_gives_the_decisions_state(
        d: KernelDriver, command: Command) -> None:
    decision = decide(d.partition, command, d.env)

    for execution_id, state in decision.states.items():
        events = d.history(execution_id) + [
            e for e in decision.events if e.execution_id == execution_id and e.seq > 0]
        rebuilt = replay(events)
        assert rebuilt is not None
        assert dataclasses.asdict(rebuilt) == dataclasses.asdict(state)
        assert rebuilt.to_execution() == state.to_execution()


def test_the_scenario_reaches_completion_and_its_history_replays_to_it() -> None:
    d = scenario()
    for make in next_commands(d):
        assert d.send(make()).rejected is None

    state = d.state("e1")
    rebuilt = replay(d.history("e1"))

    assert state.status.value == "completed"
    assert rebuilt is not None
    assert rebuilt.to_execution().model_dump() == state.to_execution().model_dump()
    assert [h["outcome"] for h in state.history] == ["failure", "success", "wait", "wait",
                                                     "success"]


def test_replay_up_to_a_seq_gives_the_state_at_that_event() -> None:
    d = scenario()
    makes = next_commands(d)
    d.send(makes[0]())
    seq_after_first = d.state("e1").seq
    snapshot = dataclasses.asdict(d.state("e1"))
    for make in makes[1:]:
        d.send(make())

    rebuilt = replay(d.history("e1"), upto_seq=seq_after_first)

    assert rebuilt is not None
    assert dataclasses.asdict(rebuilt) == snapshot


# --------------------------------------------------------------------------- no clock, no dice

_KERNEL_FORBIDDEN = frozenset({
    "asyncio", "io", "logging", "os", "pathlib", "random", "secrets", "socket", "subprocess",
    "threading", "time", "urllib", "uuid",
})


def test_the_kernel_imports_nothing_that_reads_clocks_draws_randomness_or_does_io() -> None:
    for path in sorted(Path(kernel.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in _KERNEL_FORBIDDEN, f"{path.name}: {name}"


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"decide called {what}")
    return refused


class _NoNow(datetime):
    now = classmethod(_refuse("datetime.now"))
    utcnow = classmethod(_refuse("datetime.utcnow"))
    today = classmethod(_refuse("datetime.today"))


@pytest.mark.parametrize(("d", "command"), DECISIONS)
def test_decide_reads_no_clock_and_draws_no_randomness(
        d: KernelDriver, command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    for module, names in ((time, ("time", "time_ns", "monotonic", "monotonic_ns",
                                  "perf_counter")),
                          (random, ("random", "randint", "getrandbits", "choice")),
                          (secrets, ("token_bytes", "token_hex", "token_urlsafe")),
                          (uuid, ("uuid1", "uuid4")),
                          (os, ("urandom",))):
        for name in names:
            monkeypatch.setattr(module, name, _refuse(f"{module.__name__}.{name}"))
    monkeypatch.setattr(envelope, "datetime", _NoNow)

    decide(d.partition, command, d.env)
