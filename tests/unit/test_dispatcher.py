"""EventDispatcher (FEATURES E2): listeners by type or wildcard, sync and async
delivery, unsubscribe, counts, flush, isolation of listener errors, frozen events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from flowmonkey import Event, EventDispatcher
from flowmonkey.events.envelope import make_event


def ev(type: str = "step.started", seq: int = 1, **data: Any) -> Event:
    return make_event(type, "exec-1", seq, 1_700_000_000_000, dict(data))


def test_sync_mode_delivers_inline() -> None:
    d = EventDispatcher(mode="sync")
    got: list[Event] = []
    d.on("step.started", got.append)

    d.emit(ev())

    assert [e.type for e in got] == ["step.started"]


async def test_async_mode_delivers_after_the_emitting_code() -> None:
    d = EventDispatcher()
    got: list[Event] = []
    d.on("step.started", got.append)

    d.emit(ev(seq=1))
    d.emit(ev(seq=2))
    assert got == []  # not inline

    await d.flush()
    assert [e.seq for e in got] == [1, 2]


async def test_async_mode_delivers_on_the_next_loop_turn_without_flush() -> None:
    d = EventDispatcher(mode="async")
    delivered = asyncio.Event()
    d.on("*", lambda e: delivered.set())

    d.emit(ev())

    await asyncio.wait_for(delivered.wait(), timeout=1)


def test_the_default_mode_is_async() -> None:
    assert EventDispatcher().mode == "async"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        EventDispatcher(mode="later")  # type: ignore[arg-type]


def test_a_typed_subscription_gets_only_its_type() -> None:
    d = EventDispatcher(mode="sync")
    got: list[str] = []
    d.on("step.completed", lambda e: got.append(e.type))

    d.emit(ev("step.started"))
    d.emit(ev("step.completed", seq=2))
    d.emit(ev("transition", seq=3))

    assert got == ["step.completed"]


def test_a_wildcard_listener_gets_every_type() -> None:
    d = EventDispatcher(mode="sync")
    got: list[str] = []
    d.on("*", lambda e: got.append(e.type))

    for i, name in enumerate(["execution.created", "step.started", "row.inserted"], 1):
        d.emit(ev(name, seq=i))

    assert got == ["execution.created", "step.started", "row.inserted"]


def test_typed_listeners_run_before_wildcard_ones_in_subscription_order() -> None:
    d = EventDispatcher(mode="sync")
    order: list[str] = []
    d.on("*", lambda e: order.append("wild-1"))
    d.on("step.started", lambda e: order.append("typed-1"))
    d.on("*", lambda e: order.append("wild-2"))
    d.on("step.started", lambda e: order.append("typed-2"))

    d.emit(ev())

    assert order == ["typed-1", "typed-2", "wild-1", "wild-2"]


def test_the_same_listener_is_added_once_per_type() -> None:
    d = EventDispatcher(mode="sync")
    got: list[Event] = []
    d.on("step.started", got.append)
    d.on("step.started", got.append)

    d.emit(ev())

    assert len(got) == 1
    assert d.listener_count("step.started") == 1


def test_the_function_returned_by_on_unsubscribes() -> None:
    d = EventDispatcher(mode="sync")
    got: list[Event] = []
    unsubscribe = d.on("step.started", got.append)

    unsubscribe()
    d.emit(ev())

    assert got == []
    assert d.listener_count("step.started") == 0
    unsubscribe()  # a second call is harmless


def test_off_removes_one_listener_and_keeps_the_others() -> None:
    d = EventDispatcher(mode="sync")
    first: list[Event] = []
    second: list[Event] = []
    d.on("step.started", first.append)
    d.on("step.started", second.append)

    d.off("step.started", first.append)
    d.emit(ev())

    assert first == []
    assert len(second) == 1
    d.off("step.started", first.append)  # removing an absent listener is harmless
    d.off("no.such.type", first.append)


def test_listener_count_per_type_and_in_total() -> None:
    d = EventDispatcher(mode="sync")
    d.on("a", lambda e: None)
    d.on("a", lambda e: None)
    d.on("b", lambda e: None)
    d.on("*", lambda e: None)

    assert d.listener_count("a") == 2
    assert d.listener_count("b") == 1
    assert d.listener_count("*") == 1
    assert d.listener_count("nothing") == 0
    assert d.listener_count() == 4


def test_remove_all_of_a_type_keeps_the_other_types() -> None:
    d = EventDispatcher(mode="sync")
    got: list[str] = []
    d.on("a", lambda e: got.append("a"))
    d.on("b", lambda e: got.append("b"))

    d.remove_all("a")
    d.emit(ev("a"))
    d.emit(ev("b", seq=2))

    assert got == ["b"]
    assert d.listener_count("a") == 0
    assert d.listener_count() == 1


def test_remove_all_without_a_type_removes_every_listener() -> None:
    d = EventDispatcher(mode="sync")
    got: list[str] = []
    d.on("a", lambda e: got.append("a"))
    d.on("*", lambda e: got.append("*"))

    d.remove_all()
    d.emit(ev("a"))

    assert got == []
    assert d.listener_count() == 0
    assert d.has_listeners is False


async def test_flush_waits_for_async_listeners_to_finish() -> None:
    d = EventDispatcher()
    done: list[int] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.01)
        done.append(event.seq)

    d.on("*", slow)
    d.emit(ev(seq=1))
    d.emit(ev(seq=2))

    await d.flush()

    assert sorted(done) == [1, 2]


async def test_flush_with_nothing_pending_returns() -> None:
    await asyncio.wait_for(EventDispatcher().flush(), timeout=1)
    await asyncio.wait_for(EventDispatcher(mode="sync").flush(), timeout=1)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_raising_listener_does_not_stop_the_others(mode: str) -> None:
    d = EventDispatcher(mode=mode)  # type: ignore[arg-type]
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    d.on("step.started", broken)
    d.on("step.started", lambda e: got.append("typed"))
    d.on("*", broken)
    d.on("*", lambda e: got.append("wild"))

    d.emit(ev())  # never raises into the emitter
    await d.flush()

    assert got == ["typed", "wild"]


async def test_listener_errors_go_to_on_error_with_the_event() -> None:
    errors: list[tuple[str, str]] = []
    d = EventDispatcher(mode="sync", on_error=lambda exc, e: errors.append((str(exc), e.type)))

    def broken(event: Event) -> None:
        raise ValueError("bad listener")

    async def broken_async(event: Event) -> None:
        raise KeyError("bad async listener")

    d.on("step.started", broken)
    d.on("step.started", broken_async)

    d.emit(ev())
    await d.flush()

    assert ("bad listener", "step.started") in errors
    assert ("'bad async listener'", "step.started") in errors


def test_a_raising_on_error_hook_is_contained() -> None:
    def hook(exc: BaseException, event: Event) -> None:
        raise RuntimeError("hook bug")

    d = EventDispatcher(mode="sync", on_error=hook)
    got: list[Event] = []
    d.on("*", lambda e: 1 / 0)
    d.on("*", got.append)

    d.emit(ev())

    assert len(got) == 1


def test_listeners_get_frozen_events() -> None:
    d = EventDispatcher(mode="sync")
    got: list[Event] = []
    d.on("*", got.append)
    d.emit(ev(step_id="a"))

    event = got[0]
    with pytest.raises(ValidationError):
        event.type = "something.else"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event.seq = 99  # type: ignore[misc]
    assert event.type == "step.started"
    assert event.seq == 1


def test_a_listener_cannot_change_what_the_next_listener_sees() -> None:
    d = EventDispatcher(mode="sync")
    seen: list[str] = []

    def meddle(event: Event) -> None:
        try:
            event.type = "tampered"  # type: ignore[misc]
        finally:
            seen.append(event.type)

    d.on("*", meddle)
    d.on("*", lambda e: seen.append(e.type))

    d.emit(ev())

    assert seen == ["step.started", "step.started"]


def test_emit_without_listeners_does_nothing() -> None:
    d = EventDispatcher()  # async mode: would need a loop if it tried to schedule

    d.emit(ev())

    assert d.has_listeners is False


def test_async_mode_emit_outside_a_loop_keeps_the_event_for_later() -> None:
    d = EventDispatcher()
    got: list[int] = []
    d.on("*", lambda e: got.append(e.seq))

    d.emit(ev(seq=1))  # no running loop: must not raise
    assert got == []

    async def later() -> None:
        d.emit(ev(seq=2))
        await d.flush()

    asyncio.run(later())
    assert got == [1, 2]


def test_flush_delivers_events_emitted_before_any_loop() -> None:
    d = EventDispatcher()
    got: list[int] = []
    d.on("*", lambda e: got.append(e.seq))
    d.emit(ev(seq=1))

    asyncio.run(d.flush())

    assert got == [1]
