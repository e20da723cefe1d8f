"""Measuring how long the event loop was blocked while something ran on it.

A ticker task wakes every few milliseconds and records how late it woke; while some
synchronous work holds the loop, no tick runs, so the lateness of the first tick after
it is the time the loop was blocked.

Only stalls spent running this thread count: the lateness of a tick is capped by the
CPU time the thread used meanwhile (``time.thread_time``). On a busy machine the
process may be descheduled for a while; that makes ticks late without anything
holding the loop, and must not fail a test (what the tests guard against is work on
the loop: expressions, patterns, big values, all of them CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

_TICK_S = 0.005


class LoopLag:
    """``async with LoopLag() as lag: ...`` then ``lag.max_s``: the longest stall."""

    def __init__(self) -> None:
        self.max_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        await asyncio.sleep(0)  # let the ticker start before the work does
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.sleep(_TICK_S * 2)  # one more tick, to see the last stall
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(_TICK_S)
            late = loop.time() - before - _TICK_S
            self.max_s = max(self.max_s, min(late, time.thread_time() - cpu_before))
