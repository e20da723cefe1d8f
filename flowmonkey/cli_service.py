"""The foreground loop shared by the long-running commands (``dev``, ``processor``,
``projector``): run until SIGINT or SIGTERM, check for a failure twice a second, and
report progress every interval."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

from flowmonkey.cli_common import EXIT_FAILED, EXIT_OK

_CHECK_S = 0.5


def add_gc_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-tune-gc", dest="tune_gc", action="store_false",
        help="keep Python's default garbage-collector settings (by default this "
             "dedicated process raises its thresholds and freezes its start-up objects: "
             "see flowmonkey.tuning)")


def apply_gc_option(args: argparse.Namespace) -> None:
    """Tune the collector for a dedicated long-running process, once it has started
    (its modules, flows and handlers then live as long as it does)."""
    if getattr(args, "tune_gc", False):
        from flowmonkey.tuning import tune_gc

        tune_gc()


def configure_logging(args: argparse.Namespace) -> None:
    """Warnings and errors to stderr (with ``--debug``, info too)."""
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not debug:
        # the client's warnings are mostly retries it recovers from (a coordinator
        # moving, a rebalance); lasting trouble shows as progress lines that stall
        logging.getLogger("aiokafka").setLevel(logging.ERROR)


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
