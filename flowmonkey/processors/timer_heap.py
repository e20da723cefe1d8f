"""A partition's timers: one heap of deadlines behind a single clock timer.

A processor arms one timer per execution (or trigger) whose state calls for one: a
signal wait's deadline, a retry's wake-up, an execution timeout. As one event-loop
timer each, every parked execution cost a ``TimerHandle``, a closure and a slot in the
loop's own heap (about 0.5 KB each: docs/performance.md); here it costs one tuple
in a heap and one in a dict, and the clock holds a single timer for the earliest due.

Disarming only forgets the entity's entry; its tuple stays in the heap until it comes
up (or the heap is rebuilt once stale tuples outnumber live ones), and is skipped
then: an entry fires only while it is still the one armed for its entity.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import NamedTuple

from flowmonkey.processors.clock import Clock, TimerHandle


class ArmedTimer(NamedTuple):
    due: int
    # arming order: timers due at the same ms fire in the order they were armed
    seq: int
    entity_id: str
    kind: str


# stale heap entries tolerated beyond the live ones before the heap is rebuilt
_SLACK = 64


class TimerHeap:
    """Timers by entity id; ``fire(entity_id, due, kind)`` runs once each falls due."""

    __slots__ = ("_armed", "_clock", "_fire", "_handle", "_handle_due", "_heap", "_seq")

    def __init__(self, clock: Clock, fire: Callable[[str, int, str], None]) -> None:
        self._clock = clock
        self._fire = fire
        self._armed: dict[str, ArmedTimer] = {}
        self._heap: list[ArmedTimer] = []
        self._seq = itertools.count()
        self._handle: TimerHandle | None = None
        self._handle_due = 0

    def __len__(self) -> int:
        return len(self._armed)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self._armed

    def __getitem__(self, entity_id: str) -> ArmedTimer:
        return self._armed[entity_id]

    def get(self, entity_id: str) -> ArmedTimer | None:
        return self._armed.get(entity_id)

    def values(self) -> Iterator[ArmedTimer]:
        return iter(list(self._armed.values()))

    def arm(self, entity_id: str, due: int, kind: str) -> None:
        """Arm (or re-arm) the entity's one timer."""
        entry = ArmedTimer(due, next(self._seq), entity_id, kind)
        self._armed[entity_id] = entry
        heapq.heappush(self._heap, entry)
        if self._handle is None or due < self._handle_due:
            self._schedule()

    def disarm(self, entity_id: str) -> None:
        if self._armed.pop(entity_id, None) is None:
            return
        if len(self._heap) > 2 * len(self._armed) + _SLACK:
            armed = self._armed
            self._heap = [e for e in self._heap if armed.get(e.entity_id) is e]
            heapq.heapify(self._heap)
        if not self._armed and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def clear(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed.clear()
        self._heap.clear()

    def _schedule(self) -> None:
        """Point the clock's one timer at the earliest live entry."""
        heap, armed = self._heap, self._armed
        while heap and armed.get(heap[0].entity_id) is not heap[0]:
            heapq.heappop(heap)
        if self._handle is not None:
            if heap and self._handle_due == heap[0].due:
                return
            self._handle.cancel()
            self._handle = None
        if heap:
            due = heap[0].due
            self._handle_due = due
            self._handle = self._clock.call_at(due, lambda: self._on_due(due))

    def _on_due(self, due: int) -> None:
        self._handle = None
        # what the clock was armed for is due even if its reading lags a little
        limit = max(due, self._clock.now_ms())
        heap, armed = self._heap, self._armed
        while heap and heap[0].due <= limit:
            entry = heapq.heappop(heap)
            if armed.get(entry.entity_id) is entry:
                del armed[entry.entity_id]
                self._fire(entry.entity_id, entry.due, entry.kind)
        self._schedule()
