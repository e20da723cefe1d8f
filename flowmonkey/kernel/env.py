"""What the kernel may consult besides state: immutable flow definitions, fixed before
any command that uses them, and the same in every process (they come from the flows
topic). Nothing else: which handlers a process has is a fact of that process, so the
kernel never asks (a missing handler fails the attempt where it would run)."""

from __future__ import annotations

from typing import Protocol

from flowmonkey.model.flow import Flow


class KernelEnv(Protocol):
    def flow(self, flow_id: str, version: str | None = None) -> Flow | None:
        """The exact version, or the highest published one when ``version`` is None."""
        ...
