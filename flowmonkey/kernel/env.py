"""What the kernel may consult besides state: immutable flow definitions, fixed before
any command that uses them, and the same in every process (they come from the flows
topic), and the event triggers (from the triggers topic), which turn an execution's
event into a ``trigger.fire`` for the trigger's own partition to decide. Nothing
else: which handlers a process has is a fact of that process, so the kernel never
asks (a missing handler fails the attempt where it would run)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from flowmonkey.model.flow import Flow
from flowmonkey.model.trigger import Trigger


class KernelEnv(Protocol):
    def flow(self, flow_id: str, version: str | None = None) -> Flow | None:
        """The exact version, or the highest published one when ``version`` is None."""
        ...

    def event_triggers(self, flow_id: str, event_type: str) -> Sequence[Trigger]:
        """The event triggers listening to events of ``event_type`` of ``flow_id``'s
        executions (enabled or not: the trigger's partition decides that)."""
        ...
