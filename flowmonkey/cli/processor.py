"""``flowmonkey processor``: run the stream processors of a Kafka consumer group."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from flowmonkey.cli.common import (
    Bundle,
    CliError,
    engine_handlers,
    load_apps,
)
from flowmonkey.cli.options import (
    add_app_options,
    add_command,
    add_private_http_option,
    add_progress_option,
    add_schema_option,
    add_service_options,
    add_settings_options,
)
from flowmonkey.cli.service import (
    apply_gc_option,
    configure_logging,
    run_until_stopped,
    say,
    stop_on_signals,
)
from flowmonkey.cli.settings import check_schema, serving_metrics, settings_from_args, start_engine

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.engine import Engine
    from flowmonkey.processors.snapshots import SnapshotStore
    from flowmonkey.settings import Settings

DEFAULT_GROUP = "flowmonkey-processor"
DEFAULT_SNAPSHOT_EVERY = 5000

EPILOG = """\
Every processor started with the same --group joins one Kafka consumer group over
the commands topic: each partition is processed by exactly one of them, and when
one stops or dies its partitions move to the others, which rebuild their state from
the events topic. With exactly once (the default; FLOWMONKEY_EXACTLY_ONCE=false turns
it off for brokers without transactions) a partition's events and the offsets of the
commands that caused them are committed in one Kafka transaction.

Processors need the flows and handlers: give the module that defines them with
--app (an object or module with `flows` and `handlers`; a .py path works too). The
flows are published on the flows topic so other processes see them; its `triggers`
are registered (schedules and event triggers fire from the processors, topic triggers
need `flowmonkey trigger-consumer` too). Queries and the
Postgres projection are the projector's job (`flowmonkey projector`).

With FLOWMONKEY_POSTGRES_DSN set, each partition's state is snapshotted to the
fm_snapshots table of --schema every --snapshot-every events, and a processor taking
a partition over replays only the events after its newest snapshot, so taking over
stays fast however long the events topic grows (snapshots are an optimisation: one
that cannot be used is ignored and the partition is replayed in full).

examples:
  export FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092
  flowmonkey topics create --partitions 12
  flowmonkey processor --app myapp.flows:app
  flowmonkey processor --app ./flows.py --flows-dir ./flows --group orders
  FLOWMONKEY_POSTGRES_DSN=postgresql://… flowmonkey processor --app myapp.flows:app

exit codes: 0 stopped by SIGINT/SIGTERM, 1 Kafka or PostgreSQL could not be used,
            2 bad input (no Kafka, no flows, a bad option)
"""


def register_processor(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "processor", help="run stream processors (a consumer group on Kafka)",
        description="Process the commands of the partitions this instance is assigned in "
                    "the consumer group, until SIGINT or SIGTERM.",
        epilog=EPILOG)
    add_app_options(parser)
    parser.add_argument("--group", default=DEFAULT_GROUP,
                        help=f"the processors' consumer group (default {DEFAULT_GROUP})")
    add_progress_option(parser)
    parser.add_argument("--step-timeout-ms", metavar="MS", type=int, default=30_000,
                        help="default per-step handler timeout (default 30000)")
    add_private_http_option(parser)
    parser.add_argument("--snapshot-every", metavar="N", type=int,
                        default=DEFAULT_SNAPSHOT_EVERY,
                        help="with a PostgreSQL DSN: snapshot a partition's state every N "
                             f"events (default {DEFAULT_SNAPSHOT_EVERY}; 0 turns snapshots "
                             "off)")
    add_schema_option(parser)
    add_service_options(parser)
    add_settings_options(parser, data_dir=False, embedded=False)
    parser.set_defaults(func=run_processor)


def run_processor(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.log_kind != "kafka":
        raise CliError(
            "processors run on Kafka: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass "
            "--kafka-bootstrap",
            hint="on one machine without Kafka, `flowmonkey dev` runs everything in one "
                 "process on the embedded log")
    if args.progress_every <= 0:
        raise CliError(f"--progress-every must be more than 0 seconds, not {args.progress_every}")
    if args.step_timeout_ms < 1:
        raise CliError(f"--step-timeout-ms must be at least 1, not {args.step_timeout_ms}")
    if not args.group.strip():
        raise CliError("--group must not be empty")
    if args.snapshot_every < 0:
        raise CliError(f"--snapshot-every must be 0 (off) or more, not {args.snapshot_every}")
    check_schema(args.schema)
    bundle = load_apps(args.app, args.flows_dir)
    if not bundle.flows:
        raise CliError("no flows to run: give --app MODULE (with `flows` and `handlers`) "
                       "or --flows-dir DIR")
    configure_logging(args, settings)
    return asyncio.run(_Processor(args, settings, bundle).run())


def _say(text: str) -> None:
    say("processor", text)


class _Processor:
    def __init__(self, args: argparse.Namespace, settings: Settings, bundle: Bundle) -> None:
        self.args = args
        self.settings = settings
        self.bundle = bundle
        self.stop = asyncio.Event()

    def engine(self) -> Engine:
        from flowmonkey.engine import Engine, EngineOptions
        from flowmonkey.settings import vault_from_env

        return Engine(
            flows=self.bundle.flows,
            handlers=engine_handlers(self.bundle,
                                     allow_private_http=self.args.allow_private_http),
            options=EngineOptions(timeout_ms=self.args.step_timeout_ms),
            vault=vault_from_env(),
            log=self.settings.make_log(client_id=f"flowmonkey-{self.args.group}"),
            tables=self.bundle.tables, triggers=self.bundle.triggers,
            forms=self.bundle.forms,
            processor_group=self.args.group, run_projector=False,
            snapshots=self.snapshots(), snapshot_every=self.args.snapshot_every)

    def snapshots(self) -> SnapshotStore | None:
        dsn = self.settings.postgres_dsn
        if not dsn or self.args.snapshot_every == 0:
            return None
        from flowmonkey.processors.snapshots_postgres import PostgresSnapshotStore

        return PostgresSnapshotStore(dsn, self.args.schema)

    def describe_snapshots(self) -> str:
        if not self.settings.postgres_dsn or self.args.snapshot_every == 0:
            return "no snapshots"
        return (f"snapshots every {self.args.snapshot_every} events in "
                f"{self.settings.describe_projection(self.args.schema)}")

    async def run(self) -> int:
        # served from the start, so a long recovery (or a stuck start) can be watched
        with serving_metrics(self.args, self.settings, _say):
            return await self._run()

    async def _run(self) -> int:
        engine = self.engine()
        _say(f"group {self.args.group} on {self.settings.describe_log()}, "
             f"{len(self.bundle.flows)} flows, {self.describe_snapshots()}")
        await start_engine(engine, self.settings)
        try:
            apply_gc_option(self.args)
            return await self._serve(engine)
        finally:
            _say("stopping (finishing the batch in progress)...")
            await engine.stop()
            _say("stopped")

    async def _serve(self, engine: Engine) -> int:
        stop_on_signals(self.stop)
        _say(f"joined; processing {engine.topics.commands} ({engine.partitions} "
             "partitions); Ctrl-C to stop")

        def failure() -> str | None:
            error = engine.processor_failure()
            return None if error is None else \
                f"processing stopped: {type(error).__name__}: {error}"

        return await run_until_stopped(
            self.stop, self.args.progress_every, failure=failure,
            every_interval=lambda _span: _say(_progress_line(engine)))


def _progress_line(engine: Engine) -> str:
    processors = sorted(engine.processors, key=lambda p: p.partition)
    owned = ",".join(str(p.partition) for p in processors) or "none yet"
    executions = sum(len(p.state.executions) for p in processors)
    running = sum(len(p.in_flight) for p in processors)
    timers = sum(len(p.timers) for p in processors)
    read = sum(p.commands_read for p in processors)
    line = (f"partitions {owned}: {executions} executions in memory, {running} handlers "
            f"running, {timers} timers, commands read up to offset sum {read}")
    snapshotters = [p.snapshotter for p in processors if p.snapshotter is not None]
    if snapshotters:
        line += f", {sum(s.saved for s in snapshotters)} snapshots saved"
    return line

