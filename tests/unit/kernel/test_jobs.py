"""Jobs in the kernel: every transition of a stateful handler's attempt run by workers
(claims and their races, leases, fencing, timeouts, retries, cancel), and the job
views each decision gives the workers."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import orjson
import pytest

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command
from flowmonkey.events.types import payload
from flowmonkey.kernel import jobs as kj
from flowmonkey.kernel.decide import Decision
from flowmonkey.kernel.job_state import JobState
from flowmonkey.kernel.state import WAIT_JOB, PartitionState
from flowmonkey.kernel.state_codec import state_from_json, state_to_json
from flowmonkey.kernel.timers import JOB_LEASE, JOB_TIMEOUT, timers_for
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.processors.snapshot_codec import decode_partition_state, encode_snapshot_state

from .support import T0, DictEnv, KernelDriver, make_flow, step, types

HEARTBEAT = 1_000
LEASE = 3 * HEARTBEAT
TIMEOUT = 60_000
_ids = itertools.count(1)


def job_cmd(type: str, execution_id: str, at: int, tenant_id: str | None = None,
            **data: Any) -> Command:
    return Command(type=type, command_id=f"{type}#{next(_ids)}", execution_id=execution_id,
                   timestamp_ms=at, tenant_id=tenant_id, data=data)


class Jobs:
    """A KernelDriver with an execution at a stateful step, and the job commands."""

    def __init__(self, steps: list[dict[str, Any]] | None = None, **start: Any) -> None:
        flow = make_flow("f", steps or [step("s", "export", output_key="out", on_success="t"),
                                        step("t")])
        self.d = KernelDriver(DictEnv([flow]))
        self.d.start("e1", "f", **start)

    def create(self, at: int = T0 + 1, timeout_ms: int = TIMEOUT,
               heartbeat_ms: int = HEARTBEAT) -> Decision:
        """The runner's job.create for the attempt in flight."""
        return self.d.send(job_cmd(n.CMD_JOB_CREATE, "e1", at,
                                   attempt_id=self.d.state("e1").attempt_id,
                                   job_type="export", timeout_ms=timeout_ms,
                                   heartbeat_ms=heartbeat_ms))

    @property
    def job(self) -> JobState:
        job = self.d.state("e1").job
        assert job is not None
        return job

    def claim(self, at: int, worker_id: str = "w1", job_id: str | None = None) -> Decision:
        return self.d.send(job_cmd(n.CMD_JOB_CLAIM, "e1", at,
                                   job_id=job_id or self.job.job_id, worker_id=worker_id))

    def write(self, type: str, at: int, instance_id: str, job_id: str | None = None,
              **data: Any) -> Decision:
        return self.d.send(job_cmd(type, "e1", at, job_id=job_id or self.job.job_id,
                                   instance_id=instance_id, **data))

    def claimed(self, at: int = T0 + 2, heartbeat_ms: int = HEARTBEAT) -> str:
        """Create and claim the job; the claim's instance id."""
        self.create(heartbeat_ms=heartbeat_ms)
        self.claim(at)
        instance = self.job.instance_id
        assert instance is not None
        return instance


def answer(decision: Decision) -> dict[str, Any]:
    views = [v for v in decision.job_views if v["answer"] is not None]
    assert len(views) == 1
    result: dict[str, Any] = views[0]["answer"]
    return result


def code(decision: Decision) -> str | None:
    rejected = decision.rejected
    return None if rejected is None else str(rejected.data["code"])


# --------------------------------------------------------------------------- create


def test_job_create_offers_the_attempt_as_a_job_and_the_execution_waits() -> None:
    j = Jobs(context={"rows": 3})
    attempt_id = j.d.state("e1").attempt_id
    assert attempt_id is not None

    decision = j.create(at=T0 + 1)

    assert types(decision.events) == [n.JOB_CREATED, n.EXECUTION_WAITING]
    job_id = kj.job_id_for(attempt_id)
    assert job_id.startswith("job-")
    assert len(job_id) == 4 + 24
    assert decision.events[0].data == {
        "job_id": job_id, "step_id": "s", "step_type": "export", "attempt": 1,
        "attempt_id": attempt_id, "input": {"rows": 3}, "timeout_ms": TIMEOUT,
        "heartbeat_ms": HEARTBEAT, "lease_ms": LEASE, "deadline_at": T0 + 1 + TIMEOUT}
    state = j.d.state("e1")
    assert (state.status, state.wait_kind) == (ExecutionStatus.WAITING, WAIT_JOB)
    assert state.wait_reason == f"job {job_id} (export)"
    assert state.resume_token is None
    assert (j.job.status, j.job.epoch, j.job.offered_at) == ("pending", 0, T0 + 1)
    assert timers_for(state) == [(T0 + 1 + TIMEOUT, JOB_TIMEOUT)]
    (view,) = decision.job_views
    assert view["status"] == "pending"
    assert view["input"] == {"rows": 3}
    assert view["checkpoint_data"] is None
    assert view["answer"] is None
    assert (view["execution_id"], view["flow_id"], view["type"]) == ("e1", "f", "export")


def test_job_create_for_another_attempt_is_stale_and_changes_nothing() -> None:
    j = Jobs()
    decision = j.d.send(job_cmd(n.CMD_JOB_CREATE, "e1", T0 + 1, attempt_id="e1:999",
                                job_type="export", timeout_ms=1_000, heartbeat_ms=1_000))
    assert decision.ignored == "stale job create"
    attempt_id = j.d.state("e1").attempt_id
    j.create()
    again = j.d.send(job_cmd(n.CMD_JOB_CREATE, "e1", T0 + 2, attempt_id=attempt_id,
                             job_type="export", timeout_ms=1_000, heartbeat_ms=1_000))
    assert again.ignored == "stale job create"  # it waits on its job already


def test_heartbeat_and_timeout_are_clamped_to_their_bounds() -> None:
    j = Jobs()
    j.create(timeout_ms=1, heartbeat_ms=10**9)
    assert (j.job.timeout_ms, j.job.heartbeat_ms) == (kj.MIN_JOB_TIMEOUT_MS,
                                                       kj.MAX_HEARTBEAT_MS)
    assert j.job.lease_ms == 3 * kj.MAX_HEARTBEAT_MS


def test_the_wait_timeout_does_not_apply_to_a_job_wait() -> None:
    j = Jobs(timeout={"wait_timeout_ms": 10})
    j.create()
    assert [kind for _, kind in timers_for(j.d.state("e1"))] == [JOB_TIMEOUT]


# --------------------------------------------------------------------------- claims


def test_a_claim_gives_a_fresh_instance_a_higher_epoch_and_a_lease() -> None:
    j = Jobs()
    j.create(at=T0 + 1)
    decision = j.claim(T0 + 11)

    (claimed,) = decision.events
    assert claimed.type == n.JOB_CLAIMED
    assert claimed.data == {
        "job_id": j.job.job_id, "worker_id": "w1",
        "instance_id": kj.instance_id_for(claimed.command_id or ""), "epoch": 1,
        "lease_expires_at": T0 + 11 + LEASE, "claim_latency_ms": 10}
    assert (j.job.status, j.job.worker_id, j.job.claimed_at) == ("claimed", "w1", T0 + 11)
    assert (T0 + 11 + LEASE, JOB_LEASE) in timers_for(j.d.state("e1"))
    assert answer(decision) == {"command_id": claimed.command_id, "accepted": True}
    (view,) = decision.job_views
    assert view["status"] == "claimed"
    assert view["instance_id"] == j.job.instance_id
    # the winner's answer carries what it runs the job with
    assert (view["input"], view["checkpoint_data"]) == (j.job.input, None)
    assert view["attempt_id"] == j.job.attempt_id


def test_of_two_racing_claims_one_wins_and_the_other_is_refused_already_claimed() -> None:
    j = Jobs()
    j.create()
    won = j.claim(T0 + 2, "w1")
    lost = j.claim(T0 + 2, "w2")

    assert types(won.events) == [n.JOB_CLAIMED]
    assert code(lost) == n.REJECT_JOB_ALREADY_CLAIMED
    assert "claimed by worker 'w1'" in str(lost.rejected.data["reason"])  # type: ignore[union-attr]
    assert j.job.worker_id == "w1"
    refused = answer(lost)
    assert (refused["accepted"], refused["code"]) == (False, n.REJECT_JOB_ALREADY_CLAIMED)
    assert lost.job_views[0]["worker_id"] == "w1"  # who holds it, for the loser


def test_a_claim_after_the_lease_ran_out_expires_it_and_wins_with_the_next_epoch() -> None:
    j = Jobs()
    old = j.claimed(at=T0 + 2)
    decision = j.claim(T0 + 2 + LEASE, "w2")

    assert types(decision.events) == [n.JOB_LEASE_EXPIRED, n.JOB_CLAIMED]
    assert decision.events[0].data == {"job_id": j.job.job_id, "instance_id": old,
                                       "epoch": 1}
    assert (j.job.epoch, j.job.worker_id) == (2, "w2")
    assert j.job.instance_id != old
    assert decision.events[1].data["claim_latency_ms"] == 0  # offered again just now


def test_the_lease_timer_puts_the_job_back_to_pending() -> None:
    j = Jobs()
    j.claimed(at=T0 + 2)
    decision = j.d.fire("e1")

    assert types(decision.events) == [n.JOB_LEASE_EXPIRED]
    assert (j.job.status, j.job.instance_id, j.job.epoch) == ("pending", None, 1)
    assert j.job.offered_at == T0 + 2 + LEASE
    assert [kind for _, kind in timers_for(j.d.state("e1"))] == [JOB_TIMEOUT]
    assert decision.job_views[0]["status"] == "pending"
    assert decision.job_views[0]["answer"] is None


def test_a_heartbeat_extends_the_lease_and_moves_the_timer() -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    decision = j.write(n.CMD_JOB_HEARTBEAT, T0 + 2_000, instance)

    assert types(decision.events) == [n.JOB_HEARTBEAT]
    assert j.job.lease_expires_at == T0 + 2_000 + LEASE
    assert (T0 + 2_000 + LEASE, JOB_LEASE) in timers_for(j.d.state("e1"))
    stale = j.d.send(job_cmd(n.CMD_TIMER, "e1", T0 + 2 + LEASE, due_at=T0 + 2 + LEASE,
                             kind=JOB_LEASE))
    assert stale.ignored == "stale timer"
    assert answer(decision)["accepted"] is True


# --------------------------------------------------------------------------- fencing


@pytest.mark.parametrize(("command", "data"), [
    (n.CMD_JOB_HEARTBEAT, {}),
    (n.CMD_JOB_PROGRESS, {"percent": 5}),
    (n.CMD_JOB_CHECKPOINT, {"data": {"next": 9}}),
    (n.CMD_JOB_COMPLETE, {"output": "late"}),
    (n.CMD_JOB_FAIL, {"error": {"code": "X", "message": "late"}}),
    (n.CMD_JOB_RELEASE, {}),
])
def test_every_write_of_a_superseded_instance_is_refused_and_changes_nothing(
        command: str, data: dict[str, Any]) -> None:
    j = Jobs()
    old = j.claimed(at=T0 + 2)
    j.d.fire("e1")  # its lease ran out
    j.claim(T0 + 2 + LEASE + 1, "w2")
    before = j.d.state("e1")

    decision = j.write(command, T0 + 2 + LEASE + 2, old, **data)

    (superseded,) = decision.events
    assert superseded.type == n.JOB_SUPERSEDED
    assert superseded.data == {
        "job_id": j.job.job_id, "instance_id": old, "epoch": None, "command_type": command,
        "command_id": superseded.command_id, "current_instance_id": j.job.instance_id,
        "current_epoch": 2}
    after = j.d.state("e1")
    assert dataclasses.replace(after, seq=before.seq, updated_at=before.updated_at) == before
    refused = answer(decision)
    assert (refused["accepted"], refused["code"]) == (False, n.REJECT_JOB_SUPERSEDED)
    assert decision.job_views[0]["instance_id"] == j.job.instance_id


def test_a_write_stamped_after_the_writers_own_lease_expires_it_then_is_refused() -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    decision = j.write(n.CMD_JOB_COMPLETE, T0 + 2 + LEASE, instance, output="too late")

    assert types(decision.events) == [n.JOB_LEASE_EXPIRED, n.JOB_SUPERSEDED]
    assert decision.events[1].data["epoch"] == 1
    assert decision.events[1].data["current_instance_id"] is None
    assert j.job.status == "pending"
    assert j.d.state("e1").status == ExecutionStatus.WAITING
    view = decision.job_views[0]
    assert view["status"] == "pending"
    assert view["answer"]["code"] == n.REJECT_JOB_SUPERSEDED


def test_a_released_job_is_pending_again_and_its_instance_holds_nothing() -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    decision = j.write(n.CMD_JOB_RELEASE, T0 + 5, instance, reason="shutting down")

    assert types(decision.events) == [n.JOB_RELEASED]
    assert decision.events[0].data["reason"] == "shutting down"
    assert (j.job.status, j.job.offered_at, j.job.epoch) == ("pending", T0 + 5, 1)
    assert types(j.write(n.CMD_JOB_HEARTBEAT, T0 + 6, instance).events) == [n.JOB_SUPERSEDED]
    assert j.claim(T0 + 7, "w2").events[0].data["epoch"] == 2


# --------------------------------------------------------------------------- progress, checkpoints


def test_progress_more_often_than_once_a_second_is_dropped() -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    first = j.write(n.CMD_JOB_PROGRESS, T0 + 10, instance, percent=10, message="a tenth")
    flood = j.write(n.CMD_JOB_PROGRESS, T0 + 500, instance, percent=11)
    later = j.write(n.CMD_JOB_PROGRESS, T0 + 10 + kj.PROGRESS_INTERVAL_MS, instance,
                    percent=20.5)

    assert types(first.events) == [n.JOB_PROGRESS]
    assert first.events[0].data == {"job_id": j.job.job_id, "instance_id": instance,
                                    "percent": 10, "message": "a tenth"}
    assert flood.ignored is not None
    assert flood.job_views == []
    assert types(later.events) == [n.JOB_PROGRESS]
    assert (j.job.progress_percent, j.job.progress_message) == (20.5, None)


def test_a_checkpoint_is_kept_numbered_and_offered_to_the_next_claimer() -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    j.write(n.CMD_JOB_CHECKPOINT, T0 + 3, instance, data={"next": 10})
    decision = j.write(n.CMD_JOB_CHECKPOINT, T0 + 4, instance, data={"next": 20})

    assert decision.events[0].data["checkpoint_seq"] == 2
    assert (j.job.checkpoint_data, j.job.checkpoint_seq) == ({"next": 20}, 2)
    offered = j.d.fire("e1").job_views[0]  # the lease runs out
    assert offered["checkpoint_data"] == {"next": 20}


def test_a_checkpoint_over_the_context_value_limit_is_refused_with_its_code() -> None:
    j = Jobs(options={"limits": {"max_size_bytes": 100}})
    instance = j.claimed(at=T0 + 2)
    decision = j.write(n.CMD_JOB_CHECKPOINT, T0 + 3, instance, data={"blob": "x" * 200})

    assert code(decision) == "CONTEXT_VALUE_TOO_LARGE"
    assert types(decision.events) == [n.COMMAND_REJECTED]
    assert j.job.checkpoint_seq == 0
    refused = answer(decision)
    assert (refused["accepted"], refused["code"]) == (False, "CONTEXT_VALUE_TOO_LARGE")


@pytest.mark.parametrize(("command", "data", "problem"), [
    (n.CMD_JOB_PROGRESS, {"percent": 101}, "between 0 and 100"),
    (n.CMD_JOB_PROGRESS, {"percent": True}, "must be a number"),
    (n.CMD_JOB_PROGRESS, {"percent": 1, "message": "m" * 501}, "over 500"),
    (n.CMD_JOB_FAIL, {"error": {"code": 1, "message": "m"}}, "string code"),
    (n.CMD_JOB_HEARTBEAT, {"instance_id": None}, "has no instance_id"),
])
def test_malformed_job_commands_are_refused_and_still_answered(
        command: str, data: dict[str, Any], problem: str) -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    decision = j.write(command, T0 + 3, **{"instance_id": instance, **data})

    assert code(decision) == n.REJECT_INVALID_COMMAND
    assert problem in str(decision.rejected.data["reason"])  # type: ignore[union-attr]
    assert answer(decision)["accepted"] is False


def test_a_claim_with_an_overlong_worker_id_is_refused() -> None:
    j = Jobs()
    j.create()
    assert code(j.claim(T0 + 2, "w" * 201)) == n.REJECT_INVALID_COMMAND


# --------------------------------------------------------------------------- ends


def test_completion_continues_like_a_stateless_success() -> None:
    j = Jobs(context={"rows": 3})
    instance = j.claimed(at=T0 + 2)
    decision = j.write(n.CMD_JOB_COMPLETE, T0 + 50, instance, output={"file": "a.csv"},
                       writes=[["note", "hi"]], duration_ms=40)

    assert types(decision.events) == [n.JOB_COMPLETED, n.EXECUTION_RESUMED, n.STEP_COMPLETED,
                                      n.TRANSITION, n.STEP_STARTED]
    assert decision.events[0].data == {"job_id": kj.job_id_for("e1:3"), "instance_id": instance,
                                       "epoch": 1, "output": {"file": "a.csv"},
                                       "duration_ms": 40}
    assert decision.events[2].data == {
        "step_id": "s", "step_type": "export", "attempt": 1, "duration_ms": 40,
        "outcome": "success", "output": {"file": "a.csv"}, "writes": [["note", "hi"]],
        "output_key": "out"}
    state = j.d.state("e1")
    assert state.context == {"rows": 3, "note": "hi", "out": {"file": "a.csv"}}
    assert (state.current_step_id, state.job) == ("t", None)
    assert state.ended_jobs == {kj.job_id_for("e1:3"): "completed"}
    (view,) = decision.job_views
    assert (view["status"], view["instance_id"]) == ("completed", instance)
    assert answer(decision)["accepted"] is True
    for event in decision.events:
        payload(event)


def test_a_completion_may_choose_the_next_step_or_end_the_flow() -> None:
    steps = [step("s", "export", on_success="t"), step("t"), step("u")]
    chose = Jobs(steps)
    instance = chose.claimed()
    chose.write(n.CMD_JOB_COMPLETE, T0 + 5, instance, output=1, next_step="u")
    assert chose.d.state("e1").current_step_id == "u"

    ended = Jobs(steps)
    instance = ended.claimed()
    decision = ended.write(n.CMD_JOB_COMPLETE, T0 + 5, instance, output=1, next_step=None)
    assert n.EXECUTION_COMPLETED in types(decision.events)
    assert ended.d.state("e1").status == ExecutionStatus.COMPLETED


def test_a_reclaim_answer_carries_the_last_checkpoint() -> None:
    j = Jobs(context={"rows": 3})
    first = j.claimed(at=T0 + 2)
    j.write(n.CMD_JOB_CHECKPOINT, T0 + 3, first, data={"next": 10})
    again = j.claim(T0 + 2 + LEASE + 1, "w2")
    (view,) = [v for v in again.job_views if v["answer"] is not None]
    assert view["answer"]["accepted"] is True
    assert view["status"] == "claimed"
    assert (view["input"], view["checkpoint_data"]) == ({"rows": 3}, {"next": 10})


def test_an_output_over_the_limits_fails_the_step_as_a_stateless_one_would() -> None:
    j = Jobs(options={"limits": {"max_size_bytes": 100}})
    instance = j.claimed(at=T0 + 2)
    decision = j.write(n.CMD_JOB_COMPLETE, T0 + 3, instance, output="x" * 200)

    assert types(decision.events)[-2:] == [n.STEP_COMPLETED, n.EXECUTION_FAILED]
    assert j.d.state("e1").error["code"] == "CONTEXT_VALUE_TOO_LARGE"  # type: ignore[index]
    assert decision.job_views[0]["status"] == "completed"


def test_a_failed_job_is_retried_as_a_new_job_then_goes_on_failure() -> None:
    j = Jobs([step("s", "export", retry={"max_attempts": 1}, on_failure="handle"),
              step("handle")])
    instance = j.claimed(at=T0 + 2)
    first_job = j.job.job_id
    decision = j.write(n.CMD_JOB_FAIL, T0 + 3, instance,
                       error={"code": "BUSY", "message": "try later", "details": {"n": 1}})

    assert types(decision.events) == [n.JOB_FAILED, n.EXECUTION_RESUMED, n.STEP_COMPLETED,
                                      n.STEP_RETRY, n.STEP_STARTED]
    assert decision.events[0].data["error"] == {"code": "BUSY", "message": "try later",
                                                "details": {"n": 1}}
    assert decision.job_views[0]["status"] == "failed"
    j.create(at=T0 + 4)
    assert (j.job.attempt, j.job.epoch) == (2, 0)
    assert j.job.job_id != first_job
    second = j.claim(T0 + 5).events[0].data["instance_id"]
    last = j.write(n.CMD_JOB_FAIL, T0 + 6, second, error={"code": "BUSY", "message": "no"})
    assert types(last.events)[-3:] == [n.STEP_COMPLETED, n.TRANSITION, n.STEP_STARTED]
    assert j.d.state("e1").current_step_id == "handle"


def test_a_job_past_its_timeout_times_out_and_fails_with_job_timeout_then_retries() -> None:
    j = Jobs([step("s", "export", retry={"max_attempts": 1})])
    instance = j.claimed(at=T0 + 2, heartbeat_ms=TIMEOUT)  # its lease outlasts the job
    first_job = j.job.job_id
    decision = j.d.fire("e1")

    assert types(decision.events) == [n.JOB_TIMED_OUT, n.JOB_FAILED, n.EXECUTION_RESUMED,
                                      n.STEP_COMPLETED, n.STEP_RETRY, n.STEP_STARTED]
    assert decision.events[0].data == {"job_id": first_job, "timeout_ms": TIMEOUT,
                                       "instance_id": instance}
    assert decision.events[1].data["error"]["code"] == kj.JOB_TIMEOUT
    assert j.d.state("e1").ended_jobs == {first_job: "timed_out"}
    assert decision.job_views[0]["status"] == "timed_out"
    j.create(at=T0 + 2 + TIMEOUT)
    assert j.job.job_id != first_job
    j.d.fire("e1")
    state = j.d.state("e1")
    assert state.status == ExecutionStatus.FAILED
    assert state.error["code"] == kj.JOB_TIMEOUT  # type: ignore[index]


def test_cancelling_the_execution_cancels_its_job_and_later_writes_are_refused() -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    job_id = j.job.job_id
    decision = j.d.send(job_cmd(n.CMD_CANCEL, "e1", T0 + 3, source="user", reason="stop"))

    assert types(decision.events) == [n.EXECUTION_CANCELLING, n.JOB_CANCELLED,
                                      n.EXECUTION_CANCELLED]
    assert decision.events[1].data == {"job_id": job_id,
                                       "reason": "execution cancelled (user): stop"}
    assert decision.job_views[0]["status"] == "cancelled"
    assert timers_for(j.d.state("e1")) == []
    for command in (n.CMD_JOB_HEARTBEAT, n.CMD_JOB_COMPLETE):
        late = j.write(command, T0 + 4, instance, job_id=job_id)
        assert code(late) == n.REJECT_JOB_CANCELLED
        assert late.job_views[0]["status"] == "cancelled"
        assert answer(late)["code"] == n.REJECT_JOB_CANCELLED
    assert code(j.claim(T0 + 5, job_id=job_id)) == n.REJECT_JOB_CANCELLED


def test_the_execution_timing_out_cancels_its_open_job() -> None:
    j = Jobs(timeout={"execution_timeout_ms": 2_000})
    j.claimed(at=T0 + 2)
    decision = j.d.fire("e1")  # the execution's timeout comes before the lease's end
    assert n.JOB_CANCELLED in types(decision.events)
    assert j.d.state("e1").status == ExecutionStatus.CANCELLED


def test_a_claim_of_a_finished_or_unknown_job_is_refused_job_not_found() -> None:
    j = Jobs()
    instance = j.claimed(at=T0 + 2)
    job_id = j.job.job_id
    j.write(n.CMD_JOB_COMPLETE, T0 + 3, instance)
    finished = j.claim(T0 + 4, job_id=job_id)
    assert code(finished) == n.REJECT_JOB_NOT_FOUND
    assert "has ended (completed)" in str(finished.rejected.data["reason"])  # type: ignore[union-attr]
    assert finished.job_views[0]["status"] == "completed"
    unknown = j.claim(T0 + 5, job_id="job-nope")
    assert code(unknown) == n.REJECT_JOB_NOT_FOUND
    assert {k: v for k, v in unknown.job_views[0].items() if k != "answer"} == {
        "job_id": "job-nope", "execution_id": "e1", "status": "unknown"}


def test_another_tenants_claim_finds_no_job_and_learns_nothing_of_it() -> None:
    j = Jobs(tenant_id="acme")
    j.create()
    decision = j.d.send(job_cmd(n.CMD_JOB_CLAIM, "e1", T0 + 2, tenant_id="other",
                                job_id=j.job.job_id, worker_id="w"))
    assert code(decision) == n.REJECT_JOB_NOT_FOUND
    assert decision.job_views[0]["status"] == "unknown"
    assert "input" not in decision.job_views[0]


def test_ended_jobs_are_remembered_boundedly() -> None:
    j = Jobs([step("s", "export", retry={"max_attempts": 20})])
    for i in range(12):
        j.create(at=T0 + 10 * i + 1)
        instance = j.claim(T0 + 10 * i + 2).events[0].data["instance_id"]
        j.write(n.CMD_JOB_FAIL, T0 + 10 * i + 3, instance, error={"code": "E", "message": "m"})
    ended = j.d.state("e1").ended_jobs
    assert len(ended) == 8
    assert set(ended.values()) == {"failed"}


# --------------------------------------------------------------------------- stored state


def test_a_claimed_job_survives_the_state_codec_and_a_snapshot() -> None:
    j = Jobs(context={"rows": 3})
    instance = j.claimed(at=T0 + 2)
    j.write(n.CMD_JOB_CHECKPOINT, T0 + 3, instance, data={"next": 7})
    j.write(n.CMD_JOB_PROGRESS, T0 + 4, instance, percent=33.3, message="a third")
    state = j.d.state("e1")

    stored = state_from_json(orjson.loads(orjson.dumps(state_to_json(state))))
    assert stored == state
    snapshot = encode_snapshot_state(j.d.partition, topic="t", partition=0, events_offset=1,
                                     anchor_crc=0)
    restored = decode_partition_state(snapshot, topic="t", partition=0, events_offset=1)
    assert restored.state.executions["e1"].job == j.d.partition.executions["e1"].job
    # the restored partition decides the job's next command alike
    again = KernelDriver(j.d.env)
    again.partition = restored.state
    again.events = list(j.d.events)
    cmd = job_cmd(n.CMD_JOB_COMPLETE, "e1", T0 + 5, job_id=j.job.job_id,
                  instance_id=instance, output=1)
    assert types(again.send(cmd).events) == types(j.d.send(cmd).events)


def test_a_retired_execution_keeps_no_job_but_remembers_how_it_ended() -> None:
    j = Jobs()
    j.claimed(at=T0 + 2)
    job_id = j.job.job_id
    j.d.send(job_cmd(n.CMD_CANCEL, "e1", T0 + 3))
    kept = j.d.partition.executions["e1"]
    assert kept.job is None
    assert kept.ended_jobs == {job_id: "cancelled"}
    assert isinstance(j.d.partition, PartitionState)
