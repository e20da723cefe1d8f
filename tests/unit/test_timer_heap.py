"""A partition's timer heap: what fires, when, and in what order, on a simulated clock."""

from __future__ import annotations

from flowmonkey.processors.clock import SimulatedClock
from flowmonkey.processors.timer_heap import TimerHeap

START = 1_000_000


def _heap() -> tuple[SimulatedClock, TimerHeap, list[tuple[str, int, str, int]]]:
    clock = SimulatedClock(START)
    fired: list[tuple[str, int, str, int]] = []
    heap = TimerHeap(clock, lambda entity, due, kind: fired.append(
        (entity, due, kind, clock.now_ms())))
    return clock, heap, fired


def test_timers_fire_in_due_order_each_at_its_time_and_once() -> None:
    clock, heap, fired = _heap()
    heap.arm("b", START + 20, "wake")
    heap.arm("a", START + 10, "signal_timeout")
    heap.arm("c", START + 30, "wake")
    assert clock.advance(25) == 2  # one clock timer at a time, re-armed for the next due
    assert fired == [("a", START + 10, "signal_timeout", START + 10),
                     ("b", START + 20, "wake", START + 20)]
    assert len(heap) == 1
    assert "c" in heap
    assert "a" not in heap
    clock.advance(100)
    assert [f[0] for f in fired] == ["a", "b", "c"]
    assert len(heap) == 0
    clock.advance(1000)
    assert len(fired) == 3


def test_ties_fire_in_arming_order() -> None:
    clock, heap, fired = _heap()
    for entity in ("z", "a", "m"):
        heap.arm(entity, START + 5, "wake")
    clock.advance(5)
    assert [f[0] for f in fired] == ["z", "a", "m"]


def test_disarmed_and_rearmed_timers_fire_only_as_last_armed() -> None:
    clock, heap, fired = _heap()
    heap.arm("a", START + 10, "wake")
    heap.arm("b", START + 10, "wake")
    heap.disarm("a")
    heap.arm("b", START + 40, "wait_timeout")  # replaces b's first timer
    heap.disarm("missing")  # nothing armed: no error
    clock.advance(30)
    assert fired == []
    assert heap["b"].due == START + 40
    assert heap.get("a") is None
    clock.advance(10)
    assert fired == [("b", START + 40, "wait_timeout", START + 40)]


def test_an_earlier_timer_moves_the_clock_timer_forward() -> None:
    clock, heap, fired = _heap()
    heap.arm("late", START + 1000, "wake")
    heap.arm("early", START + 1, "wake")
    clock.advance(1)
    assert fired == [("early", START + 1, "wake", START + 1)]
    assert clock.next_due() == START + 1000


def test_a_late_clock_fires_everything_due_at_once() -> None:
    clock, heap, fired = _heap()
    heap.arm("a", START + 10, "wake")
    heap.arm("b", START + 20, "wake")
    clock.jump(50)  # the process was down: both are overdue
    clock.advance(0)
    assert [(f[0], f[3]) for f in fired] == [("a", START + 50), ("b", START + 50)]


def test_many_disarms_keep_the_heap_bounded() -> None:
    clock, heap, fired = _heap()
    for i in range(1000):
        heap.arm(f"e{i}", START + 10 + i, "wake")
    for i in range(990):
        heap.disarm(f"e{i}")
    assert len(heap) == 10
    assert len(heap._heap) <= 2 * len(heap) + 64 + 1
    clock.advance(10_000)
    assert [f[0] for f in fired] == [f"e{i}" for i in range(990, 1000)]


def test_clear_drops_every_timer_and_the_clock_timer() -> None:
    clock, heap, fired = _heap()
    heap.arm("a", START + 10, "wake")
    heap.clear()
    assert clock.next_due() is None
    clock.advance(100)
    assert fired == []
    assert len(heap) == 0
    heap.arm("a", START + 200, "wake")  # usable again
    clock.advance(100)
    assert [f[0] for f in fired] == ["a"]
