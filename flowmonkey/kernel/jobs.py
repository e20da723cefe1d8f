"""Jobs: a stateful handler's step attempt, run by a worker instead of the processor.

The processor's runner does not run a stateful handler: it sends ``job.create`` for the
attempt, and the execution waits on the job (wait kind ``job``). Workers claim it
(``job.claim``), heartbeat, report progress, checkpoint, and complete or fail it; each
of these is a command decided here like any other, so claims, leases and checkpoints
are facts on the log. Fencing: a claim gives the claimant a fresh ``instance_id`` and a
higher ``epoch``; a write from any other instance (one whose lease ran out, or that
another claim replaced) is refused with ``job.superseded`` and changes nothing. Lease
expiry and the job's total timeout are timers (``kernel/timers.py``).

A completed job continues the execution exactly as a stateless handler's success does
(``attempts.attempt_outcome``); a failed or timed-out one takes the step's failure path
(its retry policy: a retry is a new attempt, so a new job, then ``on_failure``).

Every decision that touches a job also gives the job's *view* (:func:`add_job_views`):
the job as workers see it, which the processor appends to the jobs topic with the
decision's events. Views are not events: nothing rebuilds state from them.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, ms_to_datetime
from flowmonkey.kernel import job_state as js
from flowmonkey.kernel import limits as lim
from flowmonkey.kernel.attempts import attempt_outcome, step_failed
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.decision import Decision, Txn, visible_execution
from flowmonkey.kernel.error_details import bounded_error, bounded_message
from flowmonkey.kernel.inputs import InputError, resolve_input
from flowmonkey.kernel.job_state import JobState
from flowmonkey.kernel.state import WAIT_JOB, ExecutionState, PartitionState
from flowmonkey.kernel.stepping import current_flow_step, fail_execution
from flowmonkey.kernel.timers import JOB_LEASE
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.flow import Flow, Step
from flowmonkey.model.result import Result, StepError, StepResult

DEFAULT_JOB_TIMEOUT_MS = 600_000
DEFAULT_HEARTBEAT_MS = 30_000
MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS = 1_000, 600_000
MIN_JOB_TIMEOUT_MS, MAX_JOB_TIMEOUT_MS = 1_000, 7 * 24 * 60 * 60_000
LEASE_HEARTBEATS = 3
"""A claim lasts this many heartbeat intervals past the last heartbeat: a worker may
miss two before another may take its job."""
PROGRESS_INTERVAL_MS = 1_000
"""Progress reports closer together than this (per job) are dropped: a chatty
handler must not flood the log (the worker coalesces them anyway)."""
JOB_TIMEOUT = "JOB_TIMEOUT"
"""The error code of a job that ran past its total timeout."""

_ID_HEX = 24


def _hashed(prefix: str, source: str) -> str:
    digest = blake2b(source.encode("utf-8", "surrogatepass"), digest_size=_ID_HEX // 2)
    return prefix + digest.hexdigest()


def job_id_for(attempt_id: str) -> str:
    """The job of a step attempt (attempt ids are unique per attempt: a retry's job
    has a new id)."""
    return _hashed("job-", attempt_id)


def instance_id_for(claim_command_id: str) -> str:
    """The instance a claim creates: derived from the claim's command id, since
    ``decide`` has no randomness (a redelivered claim is a duplicate, ignored)."""
    return _hashed("inst-", claim_command_id)


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(int(value), high))


# --------------------------------------------------------------------------- entry


def decide_job_command(tx: Txn) -> Decision:
    return _DECIDERS[tx.cmd.type](tx)


def _create(tx: Txn) -> Decision:
    """``job.create`` (from the processor's runner): the attempt in flight becomes a
    job and the execution waits on it. Stale like a step result for another attempt."""
    d = tx.cmd.data
    st = tx.state(tx.cmd.execution_id)
    if st is None or st.status != ExecutionStatus.RUNNING or st.attempt_id != d["attempt_id"]:
        return tx.ignore("stale job create")
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    _flow, step = found
    try:
        job_input = private_copy(resolve_input(step.input, st.context))
    except InputError as exc:
        # as the runner reports an input it cannot resolve: the attempt fails at once
        message = f"step {step.id!r}: {exc}"
        tx.emit(st, n.STEP_COMPLETED, {
            "step_id": step.id, "step_type": step.type, "attempt": st.attempt,
            "duration_ms": 0, "outcome": "failure",
            "error": {"code": "INPUT_ERROR", "message": bounded_message(message)}})
        fail_execution(tx, st, "INPUT_ERROR", message, step.id)
        return tx.decision
    timeout_ms = clamp(d["timeout_ms"], MIN_JOB_TIMEOUT_MS, MAX_JOB_TIMEOUT_MS)
    heartbeat_ms = clamp(d["heartbeat_ms"], MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS)
    job_id = job_id_for(d["attempt_id"])
    tx.emit(st, n.JOB_CREATED, {
        "job_id": job_id, "step_id": step.id, "step_type": step.type, "attempt": st.attempt,
        "attempt_id": d["attempt_id"], "input": job_input, "timeout_ms": timeout_ms,
        "heartbeat_ms": heartbeat_ms, "lease_ms": LEASE_HEARTBEATS * heartbeat_ms,
        "deadline_at": tx.now + timeout_ms})
    tx.emit(st, n.EXECUTION_WAITING, {"step_id": step.id, "kind": WAIT_JOB,
                                      "reason": f"job {job_id} ({step.type})"})
    return tx.decision


def _claim(tx: Txn) -> Decision:
    d = tx.cmd.data
    st = visible_execution(tx)
    job = _open_job(tx, st, d["job_id"])
    if st is None or job is None:
        return tx.decision
    if job.status == js.CLAIMED:
        assert job.lease_expires_at is not None
        if tx.now < job.lease_expires_at:
            return tx.reject(n.REJECT_JOB_ALREADY_CLAIMED, (
                f"job {job.job_id} is claimed by worker {job.worker_id!r} (epoch "
                f"{job.epoch}) until {ms_to_datetime(job.lease_expires_at).isoformat()}"))
        _lease_expired(tx, st, job)
        job = st.job
        assert job is not None
    tx.emit(st, n.JOB_CLAIMED, {
        "job_id": job.job_id, "worker_id": d["worker_id"],
        "instance_id": instance_id_for(tx.cmd.command_id), "epoch": job.epoch + 1,
        "lease_expires_at": tx.now + job.lease_ms,
        "claim_latency_ms": max(0, tx.now - job.offered_at)})
    return tx.decision


def _heartbeat(tx: Txn) -> Decision:
    st, job = _held(tx)
    if st is not None and job is not None:
        tx.emit(st, n.JOB_HEARTBEAT, {"job_id": job.job_id, "instance_id": job.instance_id,
                                      "epoch": job.epoch,
                                      "lease_expires_at": tx.now + job.lease_ms})
    return tx.decision


def _progress(tx: Txn) -> Decision:
    st, job = _held(tx)
    if st is None or job is None:
        return tx.decision
    if job.last_progress_at is not None and \
            tx.now - job.last_progress_at < PROGRESS_INTERVAL_MS:
        return tx.ignore("job progress reported less than a second after the last")
    d = tx.cmd.data
    tx.emit(st, n.JOB_PROGRESS, {"job_id": job.job_id, "instance_id": job.instance_id,
                                 "percent": d["percent"], "message": d.get("message")})
    return tx.decision


def _checkpoint(tx: Txn) -> Decision:
    st, job = _held(tx)
    if st is None or job is None:
        return tx.decision
    data = tx.cmd.data.get("data")
    try:
        lim.check_value("job checkpoint", data, st.options.limits)
    except lim.LimitViolation as violation:
        return tx.reject(violation.code, f"checkpoint refused: {violation.message}")
    tx.emit(st, n.JOB_CHECKPOINT, {"job_id": job.job_id, "instance_id": job.instance_id,
                                   "epoch": job.epoch, "checkpoint_seq": job.checkpoint_seq + 1,
                                   "data": private_copy(data)})
    return tx.decision


def _complete(tx: Txn) -> Decision:
    st, job = _held(tx)
    if st is None or job is None:
        return tx.decision
    # (a flow gone fails the execution, cancelling the job)
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    d = tx.cmd.data
    duration_ms = _duration(tx, job)
    output = private_copy(d.get("output"))
    result = Result.success(output)
    if "next_step" in d:  # the handler chose the next step (None: the flow ends here)
        result = StepResult("success", output=output, next_step=d["next_step"],
                            has_next_step=True)
    tx.emit(st, n.JOB_COMPLETED, {"job_id": job.job_id, "instance_id": job.instance_id,
                                  "epoch": job.epoch, "output": output,
                                  "duration_ms": duration_ms})
    _resumed(tx, st, step)
    writes = [(w[0], private_copy(w[1])) for w in d.get("writes") or ()]
    attempt_outcome(tx, st, flow, step, _base(step, job, duration_ms), result, writes, d)
    return tx.decision


def _fail_job(tx: Txn) -> Decision:
    st, job = _held(tx)
    if st is None or job is None:
        return tx.decision
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    error = bounded_error(tx.cmd.data["error"])
    duration_ms = _duration(tx, job)
    tx.emit(st, n.JOB_FAILED, {"job_id": job.job_id, "instance_id": job.instance_id,
                               "epoch": job.epoch, "error": error, "duration_ms": duration_ms})
    _step_fails(tx, st, flow, step, job, duration_ms, StepError(
        error["code"], error["message"], details=error.get("details")))
    return tx.decision


def _release(tx: Txn) -> Decision:
    st, job = _held(tx)
    if st is not None and job is not None:
        # (the reason's length and characters are checked: kernel/job_checks.py)
        tx.emit(st, n.JOB_RELEASED, {
            "job_id": job.job_id, "instance_id": job.instance_id, "epoch": job.epoch,
            "reason": tx.cmd.data.get("reason")})
    return tx.decision


# --------------------------------------------------------------------------- timers


def job_timer(tx: Txn, st: ExecutionState, kind: str) -> Decision:
    """A job timer that is due (``waking.decide_timer`` checked it is one the state has)."""
    job = st.job
    assert job is not None
    if kind == JOB_LEASE:
        _lease_expired(tx, st, job)
        return tx.decision
    found = current_flow_step(tx, st)
    if found is None:
        return tx.decision
    flow, step = found
    tx.emit(st, n.JOB_TIMED_OUT, {"job_id": job.job_id, "timeout_ms": job.timeout_ms,
                                  "instance_id": job.instance_id})
    message = f"job {job.job_id} ({job.type}) did not finish within {job.timeout_ms} ms"
    error = {"code": JOB_TIMEOUT, "message": message}
    duration_ms = _duration(tx, job)
    tx.emit(st, n.JOB_FAILED, {"job_id": job.job_id, "instance_id": job.instance_id,
                               "epoch": job.epoch, "error": error, "duration_ms": duration_ms})
    _step_fails(tx, st, flow, step, job, duration_ms, StepError(JOB_TIMEOUT, message))
    return tx.decision


# --------------------------------------------------------------------------- shared


def _open_job(tx: Txn, st: ExecutionState | None, job_id: str) -> JobState | None:
    """The execution's open job ``job_id``, or None with the command refused."""
    if st is None:
        tx.reject(n.REJECT_JOB_NOT_FOUND, f"job {job_id}: execution "
                  f"{tx.cmd.execution_id!r} not found")
        return None
    job = st.job
    if job is not None and job.job_id == job_id:
        return job
    ended = st.ended_jobs.get(job_id)
    if ended == js.CANCELLED:
        tx.reject(n.REJECT_JOB_CANCELLED, f"job {job_id} was cancelled: execution {st.id!r} "
                  f"is {st.status.value}")
    elif ended is not None:
        tx.reject(n.REJECT_JOB_NOT_FOUND, f"job {job_id} has ended ({ended})")
    else:
        tx.reject(n.REJECT_JOB_NOT_FOUND, f"execution {st.id!r} has no open job {job_id}")
    return None


def _held(tx: Txn) -> tuple[ExecutionState | None, JobState | None]:
    """The job a worker's write is about, if its instance holds the claim; else the
    write is refused (``job.superseded``, after ``job.lease_expired`` when the writer's
    own lease ran out by the command's time) and the job is None."""
    d = tx.cmd.data
    st = visible_execution(tx)
    job = _open_job(tx, st, d["job_id"])
    if st is None or job is None:
        return st, None
    instance_id = d["instance_id"]
    writer_epoch: int | None = None
    if job.instance_id == instance_id:
        assert job.lease_expires_at is not None
        if tx.now < job.lease_expires_at:
            return st, job
        writer_epoch = job.epoch
        _lease_expired(tx, st, job)
        job = st.job
        assert job is not None
    tx.emit(st, n.JOB_SUPERSEDED, {
        "job_id": job.job_id, "instance_id": instance_id, "epoch": writer_epoch,
        "command_type": tx.cmd.type, "command_id": tx.cmd.command_id,
        "current_instance_id": job.instance_id, "current_epoch": job.epoch})
    return st, None


def _lease_expired(tx: Txn, st: ExecutionState, job: JobState) -> None:
    tx.emit(st, n.JOB_LEASE_EXPIRED, {"job_id": job.job_id, "instance_id": job.instance_id,
                                      "epoch": job.epoch})


def _duration(tx: Txn, job: JobState) -> int:
    """The worker's own measure when it gave one, else since the claim."""
    given = tx.cmd.data.get("duration_ms")
    if given is not None:
        return int(given)
    return max(0, tx.now - (job.claimed_at if job.claimed_at is not None else job.created_at))


def _base(step: Step, job: JobState, duration_ms: int) -> dict[str, Any]:
    return {"step_id": step.id, "step_type": step.type, "attempt": job.attempt,
            "duration_ms": duration_ms}


def _resumed(tx: Txn, st: ExecutionState, step: Step) -> None:
    tx.emit(st, n.EXECUTION_RESUMED, {"step_id": step.id, "reason": "job"})


def _step_fails(tx: Txn, st: ExecutionState, flow: Flow, step: Step, job: JobState,
                duration_ms: int, error: StepError) -> None:
    _resumed(tx, st, step)
    step_failed(tx, st, flow, step, _base(step, job, duration_ms), error)


_DECIDERS = {
    n.CMD_JOB_CREATE: _create,
    n.CMD_JOB_CLAIM: _claim,
    n.CMD_JOB_HEARTBEAT: _heartbeat,
    n.CMD_JOB_PROGRESS: _progress,
    n.CMD_JOB_CHECKPOINT: _checkpoint,
    n.CMD_JOB_COMPLETE: _complete,
    n.CMD_JOB_FAIL: _fail_job,
    n.CMD_JOB_RELEASE: _release,
}


# --------------------------------------------------------------------------- views


_ENDINGS = {n.JOB_COMPLETED: js.COMPLETED, n.JOB_FAILED: js.FAILED,
            n.JOB_TIMED_OUT: js.TIMED_OUT, n.JOB_CANCELLED: js.CANCELLED}


def add_job_views(partition: PartitionState, cmd: Command, decision: Decision) -> None:
    """Put on ``decision`` the view of every job it touched, and for a worker's
    command the answer (on the view of the job it named, even when refused).

    ``partition`` is the state the decision was made on (the jobs' state before it)."""
    touched: dict[tuple[str, str], str | None] = {}  # (execution, job) -> ending status
    superseded = False
    for event in decision.events:
        if event.seq == 0 or not event.type.startswith("job."):
            continue
        key = (event.execution_id, event.data["job_id"])
        ending = _ENDINGS.get(event.type)
        if key not in touched or (ending is not None and touched[key] is None):
            touched[key] = ending
        superseded = superseded or event.type == n.JOB_SUPERSEDED
    answer: dict[str, Any] | None = None
    asked = cmd.data.get("job_id")
    if cmd.type in n.JOB_WORKER_COMMANDS and isinstance(asked, str):
        answer = {"command_id": cmd.command_id, "accepted": True}
        rejected = decision.rejected
        if rejected is not None:
            answer.update(accepted=False, code=rejected.data["code"],
                          reason=rejected.data["reason"])
        elif superseded:
            answer.update(accepted=False, code=n.REJECT_JOB_SUPERSEDED,
                          reason=f"instance {cmd.data.get('instance_id')!r} no longer holds "
                                 f"the claim of job {asked}")
        touched.setdefault((cmd.execution_id, asked), None)
    for (execution_id, job_id), ending in touched.items():
        view = _view_of(partition, cmd, decision, execution_id, job_id, ending)
        is_answer = answer is not None and execution_id == cmd.execution_id and job_id == asked
        view["answer"] = answer if is_answer else None
        decision.job_views.append(view)


def _view_of(partition: PartitionState, cmd: Command, decision: Decision, execution_id: str,
             job_id: str, ending: str | None) -> dict[str, Any]:
    before: ExecutionState | None = partition.executions.get(execution_id)
    after = decision.states.get(execution_id, before)
    if after is None or (cmd.tenant_id is not None and after.tenant_id != cmd.tenant_id):
        return {"job_id": job_id, "execution_id": execution_id, "status": "unknown"}
    if after.job is not None and after.job.job_id == job_id:
        # the claimant's answer carries what it needs to run the job: the input and
        # the last checkpoint (the pending view it claimed from may be older)
        claimed = cmd.type == n.CMD_JOB_CLAIM and cmd.execution_id == execution_id and \
            cmd.data.get("job_id") == job_id and decision.rejected is None
        return job_view(after, after.job, with_input=claimed)
    status = ending or after.ended_jobs.get(job_id) or "unknown"
    job = before.job if before is not None else None
    if job is None or job.job_id != job_id:
        return {"job_id": job_id, "execution_id": execution_id, "status": status}
    return job_view(after, job, status)


def job_view(st: ExecutionState, job: JobState, status: str | None = None, *,
             with_input: bool = False) -> dict[str, Any]:
    """The job as workers see it (a record of the jobs topic, keyed by job id). Its
    input and checkpoint only while pending and in the answer to a won claim: what a
    claimer needs."""
    status = status or job.status
    view: dict[str, Any] = {
        "job_id": job.job_id, "execution_id": st.id, "tenant_id": st.tenant_id,
        "flow_id": st.flow_id, "flow_version": st.flow_version, "step_id": job.step_id,
        "type": job.type, "attempt": job.attempt, "attempt_id": job.attempt_id,
        "status": status, "epoch": job.epoch,
        "instance_id": job.instance_id, "worker_id": job.worker_id,
        "lease_expires_at": job.lease_expires_at, "deadline_at": job.deadline_at,
        "heartbeat_ms": job.heartbeat_ms, "timeout_ms": job.timeout_ms,
        "lease_ms": job.lease_ms, "created_at": job.created_at, "offered_at": job.offered_at,
        "checkpoint_seq": job.checkpoint_seq,
    }
    if status == js.PENDING or with_input:
        view["input"] = job.input
        view["checkpoint_data"] = job.checkpoint_data
    return view

