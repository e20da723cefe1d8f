"""``flowmonkey dev``: everything in one process on a durable embedded log.

The engine reopens the data directory on every start, so executions left waiting or
running by an earlier run continue (their timers, tokens and state live in the log).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import (
    Bundle,
    CliError,
    engine_handlers,
    load_apps,
    read_input,
)
from flowmonkey.cli.explorer import add_ui_options, check_ui_port, serve_explorer
from flowmonkey.cli.format import (
    clock_time,
    event_detail,
    event_step,
)
from flowmonkey.cli.options import (
    add_app_options,
    add_command,
    add_input_options,
    add_private_http_option,
)
from flowmonkey.cli.service import run_until_stopped, stop_on_signals

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.engine import Engine
    from flowmonkey.events.envelope import Event

DEV_EPILOG = """\
Flows come from --app (an object or module with `flows`, `handlers` and optionally
`tables`) and/or the JSON/YAML files in --flows-dir; the built-in handlers are always
there. State lives in the data directory: stop with Ctrl-C (or SIGTERM) and start
again on the same directory, and waiting executions carry on where they were.

examples:
  flowmonkey dev --flows-dir examples/flows --start order-processing \\
      --input '{"order": {"id": "A-1", "items": [{"sku": "X", "qty": 1, "price": 5}]}}'
  flowmonkey dev --app myapp.flows:app --data-dir /var/tmp/fm
  FLOWMONKEY_DATA_DIR=./state flowmonkey dev --app myapp.flows --quiet
  flowmonkey dev --flows-dir examples/flows --ui    # and open http://127.0.0.1:8080/ui
"""

LIVE_TYPES_QUIET = frozenset({"execution.created", "execution.completed", "execution.failed",
                              "execution.cancelled"})


def register_dev(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "dev", help="run a local engine on a durable embedded log",
                    description="Run an engine in the foreground on a durable embedded log, "
                                "printing events and progress until Ctrl-C or SIGTERM.",
                    epilog=DEV_EPILOG)
    p.add_argument("--data-dir", metavar="DIR",
                   default=os.environ.get("FLOWMONKEY_DATA_DIR") or "./.flowmonkey",
                   help="where the log lives (default: $FLOWMONKEY_DATA_DIR or ./.flowmonkey)")
    add_app_options(p)
    p.add_argument("--start", metavar="FLOW_ID",
                   help="create one execution of FLOW_ID at startup")
    add_input_options(p, whose="its ")
    p.add_argument("--tenant", metavar="T", help="tenant id for the --start execution")
    p.add_argument("--partitions", metavar="N", type=int, default=4,
                   help="partitions of a new data directory (default 4)")
    p.add_argument("--stats-interval", metavar="S", type=float, default=5.0,
                   help="seconds between progress lines (default 5)")
    p.add_argument("--quiet", action="store_true",
                   help="print only executions starting and ending, not every event")
    add_private_http_option(p)
    add_ui_options(p, what="this engine's data")
    p.set_defaults(func=cmd_dev)


def cmd_dev(args: argparse.Namespace) -> int:
    if args.partitions < 1:
        raise CliError("--partitions must be at least 1")
    if args.stats_interval <= 0:
        raise CliError("--stats-interval must be positive")
    check_ui_port(args.ui_port)
    if (args.input is not None or args.input_file is not None) and not args.start:
        raise CliError("--input needs --start FLOW_ID")
    bundle = load_apps(args.app, args.flows_dir)
    context = read_input(args.input, args.input_file)
    data_dir = Path(args.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create the data directory {data_dir}: {exc}") from None
    return asyncio.run(DevServer(args, bundle, context, data_dir.resolve()).run())


def _say(text: str) -> None:
    print(text, flush=True)


class DevServer:
    def __init__(self, args: argparse.Namespace, bundle: Bundle,
                 context: dict[str, Any], data_dir: Path) -> None:
        self.args = args
        self.data_dir = data_dir
        self.bundle = bundle
        self.context = context
        self.started_ms = time.time_ns() // 1_000_000
        self.window: Counter[str] = Counter()
        self.totals: Counter[str] = Counter()
        self.stop = asyncio.Event()
        self.deferred: list[Event] = []

    def on_event(self, event: Event) -> None:
        if event.seq > 0 and event.timestamp_ms < self.started_ms:
            return  # read back from the log at startup: already printed once
        kind = {"execution.created": "started", "execution.completed": "completed",
                "execution.failed": "failed", "execution.cancelled": "cancelled"}.get(event.type)
        if kind:
            self.window[kind] += 1
            self.totals[kind] += 1
        if event.seq == 0 and not event.type.startswith(("command.", "pipe.", "wal.")):
            return  # registry notifications
        if self.args.quiet and event.type not in LIVE_TYPES_QUIET:
            return
        if event.seq == 0 and event.type.startswith(("pipe.", "wal.")):
            # store events arrive before the batch that caused them: print them after
            # their pipe.row
            self.deferred.append(event)
            return
        self.print_event(event)
        if event.type == "pipe.row":
            pipe_id = event.data.get("pipe_id")
            mine = [d for d in self.deferred if d.data.get("pipeId") == pipe_id
                    and d.execution_id == event.execution_id]
            self.deferred = [d for d in self.deferred if d not in mine]
            for other in mine:
                self.print_event(other)

    def print_event(self, event: Event) -> None:
        _say(f"{clock_time(event.timestamp_ms)}  {event.execution_id[:8]}  "
             f"{event.seq or '-':>3}  {event.type:<20} {event_step(event):<14} "
             f"{event_detail(event)}")

    def flush_deferred(self) -> None:
        for event in self.deferred:
            self.print_event(event)
        self.deferred = []

    async def run(self) -> int:
        from flowmonkey.engine import Engine, EngineOptions
        from flowmonkey.events.dispatcher import EventDispatcher
        from flowmonkey.log.embedded import EmbeddedLog
        from flowmonkey.settings import vault_from_env

        data_dir = self.data_dir
        dispatcher = EventDispatcher(mode="sync")
        dispatcher.on("*", self.on_event)
        handlers = engine_handlers(self.bundle,
                                   allow_private_http=self.args.allow_private_http)
        engine = Engine(flows=self.bundle.flows, handlers=handlers,
                        options=EngineOptions(record_history=True), dispatcher=dispatcher,
                        tables=self.bundle.tables, vault=vault_from_env(),
                        triggers=self.bundle.triggers, forms=self.bundle.forms,
                        log=EmbeddedLog(path=data_dir, partitions=self.args.partitions))
        _say(f"flowmonkey dev: data dir {data_dir}")
        await engine.start()
        served = False
        try:
            code = await self._serve(engine)
            served = True
            return code
        finally:
            _say("stopping...")
            await engine.stop()
            if served:
                _say(f"stopped cleanly; {self._summary(self.totals)} this session. "
                     "Executions still waiting continue on the next start.")
            else:
                _say("stopped")

    async def _serve(self, engine: Engine) -> int:
        stop_on_signals(self.stop)
        flows = sorted(f.ref for f in engine.flows.all())
        _say(f"flows: {', '.join(flows) if flows else '(none: use --app or --flows-dir)'}")
        _say(f"handlers: {', '.join(engine.handlers.types())}")
        await self._caught_up(engine)
        await self._report_existing(engine)
        if self.args.start:
            if engine.flows.get(self.args.start) is None:
                raise CliError(
                    f"--start {self.args.start}: no such flow; the flows here are "
                    f"{', '.join(sorted(f.id for f in engine.flows.all())) or 'none'}",
                    hint="give the file that defines it with --app or --flows-dir")
            created = await engine.create(self.args.start, self.context,
                                          tenant_id=self.args.tenant)
            _say(f"started execution {created.execution.id} of {self.args.start}")
        if not self.args.ui:
            _say("running; Ctrl-C to stop")
            return await self._run(engine)
        async with serve_explorer(engine, self.args.ui_port) as url:
            base = url.removesuffix("/ui")
            _say(f"explorer: {url} (local only, no login); API docs at {base}/docs")
            _say("running; Ctrl-C to stop")
            return await self._run(engine)

    async def _run(self, engine: Engine) -> int:
        def failure() -> str | None:
            error = engine.processor_failure()
            return None if error is None else \
                f"a processor stopped: {type(error).__name__}: {error}"

        def report(span_s: float) -> None:
            if self.window:
                rates = ", ".join(f"{k} {v} ({v / span_s:.1f}/s)"
                                  for k, v in sorted(self.window.items()))
                _say(f"progress: {rates} in the last {span_s:.0f} s")
                self.window.clear()

        return await run_until_stopped(self.stop, self.args.stats_interval, failure=failure,
                                       every_check=self.flush_deferred,
                                       every_interval=report)

    async def _caught_up(self, engine: Engine) -> None:
        """Give the projection a moment to read back what the log already holds."""
        deadline = time.monotonic() + 5.0
        projector = engine.projector
        while projector is not None and time.monotonic() < deadline:
            if await projector.caught_up():
                return
            await asyncio.sleep(0.02)

    async def _report_existing(self, engine: Engine) -> None:
        counts: Counter[str] = Counter()
        cursor: str | None = None
        while True:
            page = await engine.list(limit=1000, cursor=cursor)
            for execution in page.items:
                counts[execution.status.value] += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        if counts:
            detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            total = sum(counts.values())
            _say(f"in the log: {total} execution{'' if total == 1 else 's'} ({detail})")
        else:
            _say("in the log: no executions yet")

    @staticmethod
    def _summary(counts: Counter[str]) -> str:
        if not counts:
            return "no executions started or ended"
        return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
