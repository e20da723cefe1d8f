"""What the kernel may consult besides state: immutable flow definitions and the set
of registered handler types. Both are fixed before any command that uses them."""

from __future__ import annotations

from typing import Protocol

from flowmonkey.model.flow import Flow


class KernelEnv(Protocol):
    def flow(self, flow_id: str, version: str | None = None) -> Flow | None:
        """The exact version, or the highest published one when ``version`` is None."""
        ...

    def has_handler(self, handler_type: str) -> bool: ...
