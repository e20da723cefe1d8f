"""Cancelling: an execution cancelled (by a user, its parent, or a timeout) with its
tokens revoked and its cancel cascading to its active children; a child attaching to
its parent so the cascade reaches it; a resume token revoked on its own."""

from __future__ import annotations

from flowmonkey.events import names as n
from flowmonkey.kernel.decision import Decision, Txn, reject_not_found, visible_execution
from flowmonkey.kernel.state import ExecutionState
from flowmonkey.kernel.stepping import cancel_open_job, tell_parent
from flowmonkey.model.execution import ExecutionStatus


def decide_cancel(tx: Txn) -> Decision:
    st = visible_execution(tx)
    if st is None:
        return reject_not_found(tx)
    if st.status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING,
                         ExecutionStatus.WAITING):
        return tx.reject(n.REJECT_NOT_CANCELLABLE,
                         f"execution {st.id!r} is {st.status.value}; only pending, running "
                         "or waiting executions can be cancelled")
    d = tx.cmd.data
    cancel_execution(tx, st, d.get("source") or "user", d.get("reason"))
    return tx.decision


def cancel_execution(tx: Txn, st: ExecutionState, source: str, reason: str | None,
                     expired: int = 0) -> None:
    """Cancel ``st``: revoke its active tokens, cancel its active children (sub-flow
    steps' and attached ones). ``expired``: tokens that expired just before, with the
    wait that timed out, counted with the revoked ones as invalidated."""
    tx.emit(st, n.EXECUTION_CANCELLING, {"source": source, "reason": reason})
    if st.job is not None:
        cancel_open_job(tx, st, f"execution cancelled ({source})"
                        + (f": {reason}" if reason else ""))
    tokens = st.active_tokens()
    for token in tokens:
        tx.emit(st, n.TOKEN_REVOKED, {"token": token, "reason": "cancelled"})
    children = st.active_children()
    for child_id in children:
        tx.follow_up(n.CMD_CANCEL, child_id,
                     {"source": "parent", "reason": f"parent {st.id} cancelled"}, st.tenant_id)
    tx.emit(st, n.EXECUTION_CANCELLED, {
        "source": source, "reason": reason, "step_id": st.current_step_id,
        "tokens_invalidated": len(tokens) + expired, "children_cancelled": len(children)})
    tell_parent(tx, st)


def decide_revoke_token(tx: Txn) -> Decision:
    """Revoke a resume token (``token.revoke``); only an active token can be revoked.

    Revoking the token of the signal wait in progress only marks the token and does not
    end the wait: the execution stays ``waiting`` at its step. It can no longer be
    resumed with that token (``execution.resume`` is
    refused with ``TOKEN_REVOKED``, saying the execution still waits), and no new token
    is issued, so the wait ends only by its signal timeout (the token's expiry, which
    still fires: see ``ExecutionState.signal_deadline``), by the execution's wait or
    execution timeout, or by cancellation. A signal wait with none of these timeouts
    waits until it is cancelled.
    """
    st = visible_execution(tx)
    if st is None:
        return reject_not_found(tx)
    token = st.tokens.get(tx.cmd.data["token"])  # (a string: see command_checks)
    if token is None:
        return tx.reject(n.REJECT_INVALID_TOKEN, "resume token is not valid for this execution")
    if token.status != "active":
        code = {"used": n.REJECT_TOKEN_USED, "expired": n.REJECT_TOKEN_EXPIRED}.get(
            token.status, n.REJECT_TOKEN_REVOKED)
        return tx.reject(code, f"resume token is already {token.status}")
    tx.emit(st, n.TOKEN_REVOKED, {"token": token.token, "reason": tx.cmd.data.get("reason")})
    return tx.decision


def decide_child_attach(tx: Txn) -> Decision:
    """A child created with ``parent_execution_id`` registers with its parent
    (``child.attach``, the follow-up of the child's start), so the parent's cancel
    cascades to it as to a sub-flow step's child, whatever partitions the two are on.

    An active parent records it (``child.attached``); its end then comes back as
    ``child.finished`` like any child's. A cancelled parent has it cancelled at once
    (it would be an orphan of a cancelled tree). A completed or failed parent lets it
    run. ``EngineOptions.max_children`` counts attached children
    too (one bound on the parent's list of children): a child over the limit is
    cancelled at once, the reason naming the limit. A parent that does not exist (or
    is another tenant's, or was forgotten long after it ended) changes nothing: the
    child keeps the link in its own record, and nothing cascades to it.
    """
    d = tx.cmd.data
    child_id: str = d["child_execution_id"]
    st = tx.state(tx.cmd.execution_id)
    if st is None or st.tenant_id != tx.cmd.tenant_id:
        return tx.ignore("parent not found: the link stays on the child only")
    if child_id in st.children:
        return tx.ignore("parent tracks this child already")
    reason: str | None = None
    if st.status == ExecutionStatus.CANCELLED:
        reason = f"parent {st.id} was cancelled before the child registered with it"
    elif st.is_terminal:
        return tx.ignore("parent has ended: its child runs on")
    elif len(st.children) >= st.options.max_children:
        reason = (f"parent {st.id} has {len(st.children)} children, the limit "
                  "(EngineOptions.max_children)")
    if reason is not None:
        tx.follow_up(n.CMD_CANCEL, child_id, {"source": "parent", "reason": reason},
                     tx.cmd.tenant_id)
        return tx.decision
    tx.emit(st, n.CHILD_ATTACHED, {"child_execution_id": child_id,
                                   "flow_id": d.get("flow_id")})
    return tx.decision
