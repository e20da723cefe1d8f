"""Workers: run stateful handlers' steps as jobs (claim, heartbeat, checkpoint,
progress, complete; fencing by the kernel). See ``kernel/jobs.py`` for the jobs'
rules and :mod:`.worker` for the worker.

Modules: ``worker`` (the Worker), ``feed`` (the jobs topic as a worker reads it),
``handle`` (``params.job``), ``params`` (a job handler's params), ``outcome`` (the
command that ends a job), ``flows`` (the jobs' flows, from the flows topic).

Names load on first use (PEP 562)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.errors import JobCancelledError, JobSupersededError
    from flowmonkey.jobs.handle import JobHandle
    from flowmonkey.jobs.worker import Worker

_WHERE = {
    "JobCancelledError": "flowmonkey.errors",
    "JobSupersededError": "flowmonkey.errors",
    "JobHandle": "flowmonkey.jobs.handle",
    "Worker": "flowmonkey.jobs.worker",
}

__all__ = ["JobCancelledError", "JobHandle", "JobSupersededError", "Worker"]


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
