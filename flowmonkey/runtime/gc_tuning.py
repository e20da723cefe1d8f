"""Process-level tuning for high-throughput embedded engines (opt-in).

With many executions in flight, most of the engine's short-lived objects (tasks,
commands, events, records of a batch) live through two young collections of Python's
cyclic garbage collector and get promoted to the oldest generation. With the default
thresholds (700, 10, 10) that triggers a full collection every ~70,000 allocations,
and each one walks every object in the process: with thousands of executions in
flight, full collections take a large share of the engine's CPU time (figures in
docs/performance.md).

:func:`tune_gc` raises the thresholds so that young collections are rarer (objects
die before being examined) and full ones rarer still, and optionally freezes the
objects that exist now (modules, flows, handlers: they never become garbage) so full
collections skip them. It changes the whole interpreter, so the engine never calls
it by itself; call it once, after start-up, as with any long-running server. Frozen
objects are never collected as cyclic garbage, so freeze only what lives for the
whole process (not, say, once per engine in a process that starts many).
"""

from __future__ import annotations

import gc

DEFAULT_THRESHOLDS = (50_000, 20, 100)


def tune_gc(thresholds: tuple[int, int, int] = DEFAULT_THRESHOLDS, *,
            freeze: bool = True) -> tuple[int, int, int]:
    """Set the collector's thresholds (and freeze the current objects); returns the
    previous thresholds, for :func:`restore_gc`."""
    previous = gc.get_threshold()
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*thresholds)
    return (previous[0], previous[1], previous[2])


def restore_gc(thresholds: tuple[int, int, int]) -> None:
    """Undo :func:`tune_gc`: the given thresholds, and frozen objects back under
    collection."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)
