"""Event and command type names, dotted (``execution.created``): the names flows and
listeners written for FlowMonkey use (docs/compatibility.md)."""

from __future__ import annotations

# execution history events (they carry a seq)
EXECUTION_CREATED = "execution.created"
EXECUTION_STARTED = "execution.started"
EXECUTION_WAITING = "execution.waiting"
EXECUTION_RESUMED = "execution.resumed"
EXECUTION_COMPLETED = "execution.completed"
EXECUTION_FAILED = "execution.failed"
EXECUTION_CANCELLING = "execution.cancelling"
EXECUTION_CANCELLED = "execution.cancelled"
STEP_STARTED = "step.started"
STEP_COMPLETED = "step.completed"
STEP_TIMEOUT = "step.timeout"
STEP_RETRY = "step.retry"
TRANSITION = "transition"
IDEMPOTENCY_HIT = "idempotency.hit"
TOKEN_CREATED = "token.created"
TOKEN_USED = "token.used"
TOKEN_REVOKED = "token.revoked"
# a wait's active tokens expired with it (its signal or wait timeout fired): they are
# marked expired (resuming with one is refused with TOKEN_EXPIRED), per execution when
# its wait times out (docs/compatibility.md)
TOKENS_CLEANED = "tokens.cleaned"
CHILD_STARTED = "child.started"
# a child created with ``parent_execution_id`` (not by a sub-flow step) registered with
# its parent, so the parent's cancel cascades to it
CHILD_ATTACHED = "child.attached"
CHILD_FINISHED = "child.finished"
PIPE_ROW = "pipe.row"
# jobs: a stateful handler's step attempt, run by a worker (see kernel/jobs.py)
JOB_CREATED = "job.created"
JOB_CLAIMED = "job.claimed"
JOB_HEARTBEAT = "job.heartbeat"
JOB_PROGRESS = "job.progress"
JOB_CHECKPOINT = "job.checkpoint"
JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
# a write refused because its instance no longer holds the job's claim
JOB_SUPERSEDED = "job.superseded"
JOB_LEASE_EXPIRED = "job.lease_expired"
JOB_RELEASED = "job.released"
JOB_TIMED_OUT = "job.timed_out"
JOB_CANCELLED = "job.cancelled"
# triggers: their events carry ``trigger:<id>`` as execution id (model/trigger.py),
# with a seq of their own; see kernel/triggers.py
TRIGGER_REGISTERED = "trigger.registered"
TRIGGER_ENABLED = "trigger.enabled"
TRIGGER_DISABLED = "trigger.disabled"
TRIGGER_FIRED = "trigger.fired"
TRIGGER_SKIPPED = "trigger.skipped"  # a tick skipped (overlap, catch-up policy)
TRIGGER_FAILED = "trigger.failed"  # bad signature, mapping error, disabled trigger
TRIGGER_RUN_ENDED = "trigger.run_ended"  # a run it started ended (overlap policy)
# forms: their events carry ``form:<id>`` as execution id (model/form.py)
FORM_REGISTERED = "form.registered"
FORM_SUBMITTED = "form.submitted"
FORM_REJECTED = "form.rejected"  # invalid, spam, duplicate, rate-limited, disabled
# the email-reply handler's mail, and a reply to it (on the execution)
EMAIL_SENT = "email.sent"
EMAIL_RECEIVED = "email.received"

# outside any execution's history (seq 0)
COMMAND_REJECTED = "command.rejected"

# emitted by stores and registries to the dispatcher (not on the events topic)
PIPE_INSERTED = "pipe.inserted"
PIPE_FAILED = "pipe.failed"
PIPE_DISCARDED = "pipe.discarded"  # wal_replay(max_attempts=N) gives an entry up
ROW_INSERTED = "row.inserted"
ROW_UPDATED = "row.updated"
ROW_DELETED = "row.deleted"
FLOW_REGISTERED = "flow.registered"
HANDLER_REGISTERED = "handler.registered"
HANDLER_UNREGISTERED = "handler.unregistered"
TABLE_CREATED = "table.created"
TABLE_DELETED = "table.deleted"
TABLE_COLUMN_ADDED = "table.column.added"
TABLE_COLUMN_REMOVED = "table.column.removed"
WAL_APPENDED = "wal.appended"
WAL_REPLAYED = "wal.replayed"
WAL_COMPACTED = "wal.compacted"

# commands
CMD_START = "execution.start"
CMD_RESUME = "execution.resume"
CMD_CANCEL = "execution.cancel"
CMD_REVOKE_TOKEN = "token.revoke"
CMD_STEP_RESULT = "step.result"
CMD_TIMER = "timer.fire"
CMD_CHILD_FINISHED = "child.finished"
# the follow-up a child's start sends its parent's partition (see CHILD_ATTACHED)
CMD_CHILD_ATTACH = "child.attach"
# a stateful handler's attempt becomes a job (internal: the processor's runner sends it)
CMD_JOB_CREATE = "job.create"
# what workers send about a job
CMD_JOB_CLAIM = "job.claim"
CMD_JOB_HEARTBEAT = "job.heartbeat"
CMD_JOB_PROGRESS = "job.progress"
CMD_JOB_CHECKPOINT = "job.checkpoint"
CMD_JOB_COMPLETE = "job.complete"
CMD_JOB_FAIL = "job.fail"
CMD_JOB_RELEASE = "job.release"
JOB_WORKER_COMMANDS = frozenset({CMD_JOB_CLAIM, CMD_JOB_HEARTBEAT, CMD_JOB_PROGRESS,
                                 CMD_JOB_CHECKPOINT, CMD_JOB_COMPLETE, CMD_JOB_FAIL,
                                 CMD_JOB_RELEASE})

# triggers (to the trigger's entity ``trigger:<id>``)
CMD_TRIGGER_REGISTER = "trigger.register"
CMD_TRIGGER_ENABLE = "trigger.enable"
CMD_TRIGGER_DISABLE = "trigger.disable"
CMD_TRIGGER_FIRE = "trigger.fire"
CMD_TRIGGER_RUN_ENDED = "trigger.run_ended"
TRIGGER_COMMANDS = frozenset({CMD_TRIGGER_REGISTER, CMD_TRIGGER_ENABLE, CMD_TRIGGER_DISABLE,
                              CMD_TRIGGER_FIRE, CMD_TRIGGER_RUN_ENDED})

# forms (to the form's entity ``form:<id>``)
CMD_FORM_REGISTER = "form.register"
CMD_FORM_SUBMIT = "form.submit"
FORM_COMMANDS = frozenset({CMD_FORM_REGISTER, CMD_FORM_SUBMIT})

EXTERNAL_COMMANDS = frozenset({CMD_START, CMD_RESUME, CMD_CANCEL, CMD_REVOKE_TOKEN,
                               CMD_CHILD_FINISHED, CMD_CHILD_ATTACH}) | JOB_WORKER_COMMANDS | \
    TRIGGER_COMMANDS | FORM_COMMANDS

# rejection codes
REJECT_EXECUTION_NOT_FOUND = "EXECUTION_NOT_FOUND"
REJECT_EXECUTION_EXISTS = "EXECUTION_EXISTS"
REJECT_FLOW_NOT_FOUND = "FLOW_NOT_FOUND"
REJECT_FLOW_NOT_PUBLISHED = "FLOW_NOT_PUBLISHED"
REJECT_NOT_WAITING = "NOT_WAITING"
REJECT_NOT_CANCELLABLE = "NOT_CANCELLABLE"
REJECT_INVALID_TOKEN = "INVALID_TOKEN"
REJECT_TOKEN_USED = "TOKEN_USED"
REJECT_TOKEN_EXPIRED = "TOKEN_EXPIRED"
REJECT_TOKEN_REVOKED = "TOKEN_REVOKED"
REJECT_INVALID_COMMAND = "INVALID_COMMAND"
REJECT_IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_KEY_CONFLICT"
# the engine itself failed on the command (a kernel, applier or encoder exception): the
# command changed nothing, and the processor's log has the traceback; never bad input
REJECT_INTERNAL_ERROR = "INTERNAL_ERROR"
# jobs: no such open job on the execution (or it already ended, other than cancelled)
REJECT_JOB_NOT_FOUND = "JOB_NOT_FOUND"
# a claim of a job whose lease is live
REJECT_JOB_ALREADY_CLAIMED = "JOB_ALREADY_CLAIMED"
# a command about a job that was cancelled (its execution was cancelled or ended)
REJECT_JOB_CANCELLED = "JOB_CANCELLED"
# (not a command.rejected code: the code a job view's answer carries for a write that
# was refused with job.superseded)
REJECT_JOB_SUPERSEDED = "JOB_SUPERSEDED"
