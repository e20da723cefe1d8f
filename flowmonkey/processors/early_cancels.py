"""Expedited cancels waiting for their execution's start (see
:meth:`~flowmonkey.processors.partition.PartitionProcessor.expedite`).

A cancel handed over ahead of the backlog may name an execution whose start is still
in that backlog. It waits here, keyed by execution id, oldest first, and is decided
right after the start, in the same batch, before the execution's first handler runs.
It is dropped when its copy on the log is decided first (that decision, in log order,
is the one that counts, and a start of the same id much later must not be cancelled
by it), after :data:`EARLY_CANCEL_TTL_MS`, or when more than
:data:`MAX_EARLY_CANCELS` wait: in every case its copy on the log still comes.
"""

from __future__ import annotations

from collections import OrderedDict

from flowmonkey.events.envelope import Command

MAX_EARLY_CANCELS = 100_000
EARLY_CANCEL_TTL_MS = 5 * 60_000
"""How long one waits at most, on the processor's clock."""


class EarlyCancels:
    """Cancels waiting for their execution's start, oldest first."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        # execution id -> (cancel, dropped at ms)
        self._waiting: OrderedDict[str, tuple[Command, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._waiting

    def hold(self, command: Command, now_ms: int) -> None:
        """Keep ``command`` until its execution starts (a newer one for the same
        execution replaces it, and is kept as the newest)."""
        waiting = self._waiting
        waiting.pop(command.execution_id, None)
        waiting[command.execution_id] = (command, now_ms + EARLY_CANCEL_TTL_MS)
        if len(waiting) > MAX_EARLY_CANCELS:
            waiting.popitem(last=False)

    def expire(self, now_ms: int) -> None:
        """Drop those that waited past their time."""
        waiting = self._waiting
        while waiting:
            execution_id, (_, drop_at) = next(iter(waiting.items()))
            if drop_at > now_ms:
                return
            del waiting[execution_id]

    def decided_from_log(self, command: Command) -> None:
        """``command`` (a cancel read from the log) is being decided: if it is the copy
        of one waiting here, that one is done."""
        waiting = self._waiting.get(command.execution_id)
        if waiting is not None and waiting[0].command_id == command.command_id:
            del self._waiting[command.execution_id]

    def take(self, execution_id: str) -> Command | None:
        """The cancel waiting for ``execution_id``, which has just started, if any."""
        waiting = self._waiting.pop(execution_id, None)
        return waiting[0] if waiting is not None else None
