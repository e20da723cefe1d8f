"""Waiters: ``wait`` reads an execution again only after an event that may bring it
to a status it waits for, and ``create`` answers take the state a processor in this
process decided when it is the fold of the very events the log gave."""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event, make_event
from flowmonkey.kernel.apply import APPLIERS, replay
from flowmonkey.model.execution import Execution, ExecutionStatus
from flowmonkey.runtime.waiters import KEEP_STATUS, STATUS_SET_BY, Waiters, wakes

RESTING = frozenset({ExecutionStatus.WAITING, ExecutionStatus.COMPLETED,
                     ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


def created(execution_id: str = "e1", command_id: str = "c1", at: int = 1) -> Event:
    return make_event(n.EXECUTION_CREATED, execution_id, 1, at,
                      {"flow_id": "f", "flow_version": "1", "context": {"x": 1},
                       "options": {}}, command_id=command_id)


def event(type_: str, seq: int, data: dict[str, object] | None = None,
          execution_id: str = "e1", command_id: str = "c2") -> Event:
    return make_event(type_, execution_id, seq, 2, data or {}, command_id=command_id)


def test_every_applied_event_type_is_classed_for_waking() -> None:
    # a type in neither set wakes every wait (safe); one in both would be a mistake
    assert not KEEP_STATUS & set(STATUS_SET_BY)
    assert set(STATUS_SET_BY) <= set(APPLIERS)


def test_events_that_keep_the_status_wake_no_wait() -> None:
    assert not wakes(n.STEP_COMPLETED, RESTING)
    assert not wakes(n.TRANSITION, RESTING)
    assert not wakes(n.STEP_STARTED, RESTING)  # running: no plain wait returns there
    assert wakes(n.STEP_STARTED, frozenset({ExecutionStatus.RUNNING}))
    assert wakes(n.EXECUTION_WAITING, RESTING)
    assert wakes(n.EXECUTION_COMPLETED, RESTING)
    assert wakes(n.EXECUTION_CREATED, RESTING)  # it may have moved on in its batch
    assert wakes("job.claimed", RESTING)  # a job decides whether waiting is resting
    assert wakes("some.future.type", RESTING)


async def test_wait_reads_again_only_after_an_event_that_may_end_it() -> None:
    waiters = Waiters()
    status = ExecutionStatus.RUNNING
    reads: list[ExecutionStatus] = []
    execution = replay([created(), event(n.STEP_STARTED, 2, {
        "step_id": "s", "attempt": 1, "attempt_id": "a"})])
    assert execution is not None

    async def read(execution_id: str) -> Execution | None:
        assert execution is not None
        reads.append(status)
        return execution.to_execution().model_copy(update={"status": status})

    waiter = asyncio.ensure_future(waiters.wait("e1", read, timeout_s=5))
    await asyncio.sleep(0)
    assert reads == [ExecutionStatus.RUNNING]

    waiters.on_events([event(n.STEP_COMPLETED, 3, {"step_id": "s", "outcome": "success"}),
                       event(n.TRANSITION, 4, {"from_step_id": "s", "to_step_id": "t"}),
                       event(n.STEP_STARTED, 5, {"step_id": "t", "attempt": 1,
                                                  "attempt_id": "b"}),
                       event(n.STEP_COMPLETED, 2, {}, execution_id="other")])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert reads == [ExecutionStatus.RUNNING]  # nothing it waits for: not read again
    assert not waiter.done()

    status = ExecutionStatus.COMPLETED
    waiters.on_events([event(n.STEP_COMPLETED, 6, {"step_id": "t", "outcome": "success"}),
                       event(n.EXECUTION_COMPLETED, 7)])
    done = await asyncio.wait_for(waiter, 5)

    assert done.status == ExecutionStatus.COMPLETED
    assert reads == [ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED]
    assert waiters.executions == {}


async def test_two_waits_on_one_execution_wake_each_for_its_own_statuses() -> None:
    waiters = Waiters()
    base = replay([created()])
    assert base is not None
    status = ExecutionStatus.PENDING

    async def read(execution_id: str) -> Execution | None:
        assert base is not None
        return base.to_execution().model_copy(update={"status": status})

    running = asyncio.ensure_future(waiters.wait(
        "e1", read, 5, until=[ExecutionStatus.RUNNING]))
    resting = asyncio.ensure_future(waiters.wait("e1", read, 5))
    await asyncio.sleep(0)

    status = ExecutionStatus.RUNNING
    waiters.on_events([event(n.STEP_STARTED, 2, {"step_id": "s", "attempt": 1,
                                                 "attempt_id": "a"})])

    assert (await asyncio.wait_for(running, 5)).status == ExecutionStatus.RUNNING
    assert not resting.done()
    assert [f for f, _ in waiters.executions["e1"]] != []
    resting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await resting
    assert waiters.executions == {}


async def test_a_create_answer_takes_the_decided_state_only_for_the_logged_events() -> None:
    waiters = Waiters()
    logged = [created(), event(n.STEP_STARTED, 2, {"step_id": "s", "attempt": 1,
                                                    "attempt_id": "a"}, command_id="c1")]

    # the same events (equal, as decoded from the log): the decided state is the answer
    same = waiters.expect("c1", n.CMD_START)
    decided_state = replay(list(logged))
    assert decided_state is not None
    decided_state.metadata = {"marker": True}  # (tells which state the answer came from)
    waiters.started("c1", [Event(**e.model_dump()) for e in logged], decided_state)
    waiters.on_events(logged)
    assert (await same.future).type == n.EXECUTION_CREATED
    assert same.execution is not None
    assert same.execution.metadata == {"marker": True}

    # another decision of the start (its append failed, decided again elsewhere): folded
    other = waiters.expect("c1", n.CMD_START)
    earlier = [created(at=999)]
    stale = replay(list(earlier))
    assert stale is not None
    waiters.started("c1", earlier, stale)
    waiters.on_events(logged)
    await other.future
    assert other.execution is not None
    assert other.execution.created_at == logged[0].timestamp
    assert other.execution.current_step_id == "s"
    assert other.execution.metadata is None


def test_a_state_for_a_command_nobody_awaits_is_not_kept() -> None:
    waiters = Waiters()
    state = replay([created()])
    assert state is not None
    waiters.started("c-unknown", [created()], state)
    assert waiters.commands == {}
