"""The foreground loop shared by the long-running commands (``dev``, ``processor``,
``projector``): run until SIGINT or SIGTERM, check for a failure twice a second, and
report progress every interval."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable

from flowmonkey.cli_common import EXIT_FAILED, EXIT_OK

_CHECK_S = 0.5


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set ``stop`` instead of interrupting the loop."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run_until_stopped(stop: asyncio.Event, interval_s: float, *,
                            failure: Callable[[], str | None],
                            every_check: Callable[[], None] | None = None,
                            every_interval: Callable[[float], None] | None = None) -> int:
    """Wait for ``stop``; exit code 1 as soon as ``failure()`` returns a message (printed
    as ``error: …``), else 0. ``every_check`` runs at each check, ``every_interval`` with
    the seconds since its last call once per ``interval_s``."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(interval_s, _CHECK_S)):
                await stop.wait()
        message = failure()
        if message is not None:
            print(f"error: {message}", file=sys.stderr, flush=True)
            return EXIT_FAILED
        if every_check is not None:
            every_check()
        now = loop.time()
        if now - last >= interval_s:
            if every_interval is not None:
                every_interval(now - last)
            last = now
    return EXIT_OK
