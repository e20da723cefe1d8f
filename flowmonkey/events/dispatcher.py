"""EventDispatcher (FEATURES E2): listeners by event type or ``*``, sync or async delivery.

Listeners receive frozen events. One listener's exception never reaches another
listener or the engine; it goes to ``on_error`` (logged by default).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from flowmonkey.events.envelope import Event

log = logging.getLogger("flowmonkey.events.dispatcher")

Listener = Callable[[Event], Any]
ErrorHook = Callable[[BaseException, Event], None]
WILDCARD = "*"


class EventDispatcher:
    """Fan events out to listeners. ``mode="sync"`` calls them inline; ``"async"`` (the
    default) delivers on the event loop, after the code that emitted the event."""

    def __init__(self, mode: Literal["async", "sync"] = "async",
                 on_error: ErrorHook | None = None) -> None:
        if mode not in ("async", "sync"):
            raise ValueError("mode must be 'async' or 'sync'")
        self.mode = mode
        self._listeners: dict[str, list[Listener]] = {}
        # per event type, who gets it (typed then wildcard): built once per type and
        # subscription change, not per event
        self._targets: dict[str, tuple[Listener, ...]] = {}
        self._on_error = on_error
        self._pending: set[asyncio.Future[Any]] = set()
        self._queue: list[Event] = []
        self._scheduled = False

    def on(self, type: str, listener: Listener) -> Callable[[], None]:
        """Subscribe to one event type or ``*``; returns a function that unsubscribes."""
        listeners = self._listeners.setdefault(type, [])
        if listener not in listeners:
            listeners.append(listener)
            self._targets.clear()
        return lambda: self.off(type, listener)

    def off(self, type: str, listener: Listener) -> None:
        listeners = self._listeners.get(type)
        if listeners and listener in listeners:
            listeners.remove(listener)
            self._targets.clear()

    def listener_count(self, type: str | None = None) -> int:
        if type is None:
            return sum(len(v) for v in self._listeners.values())
        return len(self._listeners.get(type, ()))

    def remove_all(self, type: str | None = None) -> None:
        self._targets.clear()
        if type is None:
            self._listeners.clear()
        else:
            self._listeners.pop(type, None)

    @property
    def has_listeners(self) -> bool:
        return any(self._listeners.values())

    def emit(self, event: Event) -> None:
        """Deliver one event (specific listeners first, then wildcard ones)."""
        if not self._listeners:
            return
        if self.mode == "sync":
            self._deliver(event)
            return
        self._queue.append(event)
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                # No loop yet (e.g. an Engine built before asyncio.run): keep the event;
                # the next emit on a loop, or flush(), delivers the queue in order.
                return
            self._scheduled = True
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        for event in queue:
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        targets = self._targets.get(event.type)
        if targets is None:
            targets = self._targets[event.type] = (*self._listeners.get(event.type, ()),
                                                   *self._listeners.get(WILDCARD, ()))
        for listener in targets:
            try:
                outcome = listener(event)
                if inspect.isawaitable(outcome):
                    self._track(outcome, event)
            except Exception as exc:
                self._report(exc, event)

    def _track(self, awaitable: Awaitable[Any], event: Event) -> None:
        future = asyncio.ensure_future(awaitable)
        self._pending.add(future)

        def done(f: asyncio.Future[Any]) -> None:
            self._pending.discard(f)
            if not f.cancelled() and f.exception() is not None:
                self._report(f.exception(), event)  # type: ignore[arg-type]

        future.add_done_callback(done)

    def _report(self, exc: BaseException, event: Event) -> None:
        if self._on_error is not None:
            try:
                self._on_error(exc, event)
            except Exception:
                log.exception("event listener error hook failed")
            return
        log.warning("event listener for %s failed: %r", event.type, exc)

    async def flush(self) -> None:
        """Wait until every queued event is delivered and async listeners are done."""
        while self._queue or self._scheduled or self._pending:
            if self._queue or self._scheduled:
                self._drain()
            if self._pending:
                await asyncio.gather(*list(self._pending), return_exceptions=True)
            await asyncio.sleep(0)
