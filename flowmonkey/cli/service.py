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
from datetime import UTC, datetime
from typing import Any

import orjson

from flowmonkey.cli.common import EXIT_FAILED, EXIT_OK
from flowmonkey.settings import Settings

_CHECK_S = 0.5


def apply_gc_option(args: argparse.Namespace) -> None:
    """Tune the collector for a dedicated long-running process, once it has started
    (its modules, flows and handlers then live as long as it does)."""
    if getattr(args, "tune_gc", False):
        from flowmonkey.runtime.gc_tuning import tune_gc

        tune_gc()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message, the
    exception when there is one, and any ``extra=`` fields of the call."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                doc[key] = value
        return orjson.dumps(doc, default=str).decode()


# the attributes every LogRecord has: anything else came in through ``extra=``
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}
_format = "text"  # of say(): set by configure_logging


def say(component: str, text: str) -> None:
    """A progress line of a service command on stdout: ``component: text``, or in the
    JSON log format a record of logger ``flowmonkey.<component>`` at INFO."""
    if _format == "json":
        print(orjson.dumps({
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "INFO",
            "logger": f"flowmonkey.{component}", "message": text}).decode(), flush=True)
    else:
        print(f"{component}: {text}", flush=True)


def configure_logging(args: argparse.Namespace, settings: Settings) -> None:
    """Warnings and errors to stderr (with ``--debug``, info too), as text or JSON
    (``settings.log_format``: ``--log-format`` over FLOWMONKEY_LOG_FORMAT)."""
    global _format
    _format = settings.log_format
    debug = bool(getattr(args, "debug", False))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if _format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING,
                        handlers=[handler])
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
