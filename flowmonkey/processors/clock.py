"""Injectable clocks. The kernel never reads a clock: the processor stamps each command
with ``clock.now_ms()`` and schedules timers through ``clock.call_at``."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def call_at(self, when_ms: int, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the event loop once the clock reaches ``when_ms``."""
        ...


class SystemClock:
    """Wall-clock time; timers on the running event loop."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def call_at(self, when_ms: int, callback: Callable[[], None]) -> TimerHandle:
        delay = max(0.0, (when_ms - self.now_ms()) / 1000)
        return asyncio.get_running_loop().call_later(delay, callback)


class _SimHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedClock:
    """Time that moves only when told to; due callbacks run in order on ``advance``."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = start_ms if start_ms is not None else time.time_ns() // 1_000_000
        self._heap: list[tuple[int, int, _SimHandle, Callable[[], None]]] = []
        self._order = itertools.count()

    def now_ms(self) -> int:
        return self._now

    def call_at(self, when_ms: int, callback: Callable[[], None]) -> TimerHandle:
        handle = _SimHandle()
        heapq.heappush(self._heap, (when_ms, next(self._order), handle, callback))
        return handle

    def next_due(self) -> int | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def jump(self, ms: int) -> None:
        """Move time forward by ``ms`` without running what falls due meanwhile: it
        runs late, at the next ``advance`` (a process that was down, an outage)."""
        self._now += ms

    def advance(self, ms: int) -> int:
        """Move time forward by ``ms``; returns how many timers fired."""
        return self.advance_to(self._now + ms)

    def advance_to(self, when_ms: int) -> int:
        fired = 0
        while True:
            due = self.next_due()
            if due is None or due > when_ms:
                break
            _, _, handle, callback = heapq.heappop(self._heap)
            self._now = max(self._now, due)
            if not handle.cancelled:
                fired += 1
                callback()
        self._now = max(self._now, when_ms)
        return fired
