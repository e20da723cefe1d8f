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

EXTERNAL_COMMANDS = frozenset({CMD_START, CMD_RESUME, CMD_CANCEL, CMD_REVOKE_TOKEN,
                               CMD_CHILD_FINISHED, CMD_CHILD_ATTACH})

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
