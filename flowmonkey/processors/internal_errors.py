"""Commands the engine itself failed on (a kernel bug, an encoder limit): the
``INTERNAL_ERROR`` rejection that answers one, and the commands that keep the
executions around it from waiting forever (its parent told a child could not start,
a step's result followed by a plain failure of that step, a parent told plainly that
its child failed). ``PartitionProcessor._reject_poisoned`` writes and sends them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Command, Event, make_event, trusted_command
from flowmonkey.kernel.error_details import bounded_message
from flowmonkey.kernel.ids import follow_up_command_id

# internal commands that answer a step attempt: a handler's result, or the job that
# runs a stateful handler's attempt
ATTEMPT_ANSWERS = frozenset({n.CMD_STEP_RESULT, n.CMD_JOB_CREATE})


def first_child_failure(data: Mapping[str, Any]) -> bool:
    """False for the plain ``child.finished`` the processor sends after one it failed
    on (see ``PartitionProcessor._reject_poisoned``), so it is not sent twice."""
    error = data.get("error")
    return not (isinstance(error, dict) and error.get("code") == n.REJECT_INTERNAL_ERROR
                and data.get("context") is None and data.get("status") == "failed")


def internal_error_reason(command: Command, exc: Exception) -> str:
    return (f"the engine failed on this {command.type} command "
            f"({type(exc).__name__}: {bounded_message(str(exc))[:300]}); it changed "
            "nothing; the processor's log has the traceback")


def internal_error_rejection(command: Command, reason: str) -> Event:
    return make_event(
        n.COMMAND_REJECTED, command.execution_id, 0, command.timestamp_ms,
        {"command_id": command.command_id, "command_type": command.type,
         "code": n.REJECT_INTERNAL_ERROR, "reason": reason},
        tenant_id=command.tenant_id, command_id=command.command_id)


def parent_reports(command: Command, reason: str) -> list[Command]:
    """A child's start that failed tells its parent, which would otherwise wait for it
    forever (sent with the rejection)."""
    follow_ups: list[Command] = []
    data = command.data
    parent_id = data.get("parent_execution_id") if command.type == n.CMD_START else None
    if isinstance(parent_id, str) and parent_id:
        follow_ups.append(trusted_command(
            n.CMD_CHILD_FINISHED,
            follow_up_command_id(command.command_id, n.CMD_CHILD_FINISHED, parent_id),
            parent_id, command.timestamp_ms,
            {"child_execution_id": command.execution_id, "status": "failed",
             "error": {"code": n.REJECT_INTERNAL_ERROR, "message": reason},
             "context": None}, command.tenant_id))
    return follow_ups


def internal_error_follow_up(command: Command) -> Command | None:
    """The command the processor decides next, once ``command`` is rejected: a plain
    ``INTERNAL_ERROR`` failure of the step whose result (or job) it was, or a plain
    ``child.finished`` for the parent of a child whose end it was; None when it was
    neither, or was such a follow-up already (so one execution cannot loop)."""
    attempt_id = command.data.get("attempt_id")
    raised = command.data.get("raised")
    first_failure = not (isinstance(raised, dict)
                         and raised.get("code") == n.REJECT_INTERNAL_ERROR)
    if command.type in ATTEMPT_ANSWERS and isinstance(attempt_id, str) \
            and first_failure:
        return trusted_command(
            n.CMD_STEP_RESULT, f"internal-error:{attempt_id}", command.execution_id,
            command.timestamp_ms,
            {"attempt_id": attempt_id, "raised": {
                "code": n.REJECT_INTERNAL_ERROR,
                "message": "the engine failed on this step's result; the processor's "
                           "log has the traceback"}}, command.tenant_id)
    if command.type == n.CMD_CHILD_FINISHED and first_child_failure(command.data):
        # the parent waits for this child: it is told the child failed, plainly
        return trusted_command(
            n.CMD_CHILD_FINISHED,
            follow_up_command_id(command.command_id, "internal-error",
                                 command.execution_id),
            command.execution_id, command.timestamp_ms,
            {"child_execution_id": command.data.get("child_execution_id"),
             "status": "failed", "context": None,
             "error": {"code": n.REJECT_INTERNAL_ERROR,
                       "message": "the engine failed on this child's end; the "
                                  "processor's log has the traceback"}},
            command.tenant_id)
    return None
