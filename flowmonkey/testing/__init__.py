"""Testing helpers: the TestHarness with simulated time (services live in ``.services``).

The names are loaded on first use (PEP 562), so importing :mod:`.services` does not
load the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmonkey.processors.clock import SimulatedClock
    from flowmonkey.testing.harness import RunResult, TestHarness

_WHERE = {
    "SimulatedClock": "flowmonkey.processors.clock",
    "RunResult": "flowmonkey.testing.harness",
    "TestHarness": "flowmonkey.testing.harness",
}

__all__ = ["RunResult", "SimulatedClock", "TestHarness"]


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
