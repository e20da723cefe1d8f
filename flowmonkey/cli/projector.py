"""``flowmonkey projector``: keep the Postgres projection up to date, as its own process."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from flowmonkey.cli.common import EXIT_FAILED, CliError
from flowmonkey.cli.options import (
    add_command,
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
from flowmonkey.cli.settings import (
    check_schema,
    log_unreachable,
    postgres_unreachable,
    require_dsn,
    scrub,
    serving_metrics,
    settings_from_args,
)

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.projections.projector import PartitionProgress
    from flowmonkey.projections.service import ProjectorService
    from flowmonkey.settings import Settings

# projections.projector.DEFAULT_GROUP, repeated so that `--help` imports no engine code
DEFAULT_GROUP = "flowmonkey-projector"

EPILOG = """\
On Kafka every projector started with the same --group shares the events partitions
with the others (a consumer group): start more to project faster, stop one and the
rest take its partitions over. The offsets are stored in Postgres in the same
transaction as the rows, so each event lands exactly once, across restarts too. Each
batch checks that the stored offsets are the ones it continues from: if Postgres lost
acknowledged commits (a crash with synchronous_commit off), the projector reads the
stored offsets again and applies the lost events again. An offset stored past the
end of the log stops it (exit 1): repair the log, then `flowmonkey rebuild`. On
the durable embedded log (FLOWMONKEY_DATA_DIR) one projector projects everything.
Migrations run on start. Progress is printed every --progress-every seconds; lag is
the time from an event's timestamp to when its batch was committed.

examples:
  export FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey projector
  flowmonkey projector --group reporting --schema reporting --progress-every 30

exit codes: 0 stopped by SIGINT/SIGTERM, 1 Kafka or Postgres could not be used or
            projecting failed, 2 bad input (no DSN, no log, a bad option)
"""


def register_projector(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "projector", help="run a projector (events -> Postgres)",
        description="Consume the events topic and keep the Postgres projection up to "
                    "date until SIGINT or SIGTERM.",
        epilog=EPILOG)
    parser.add_argument("--group", default=DEFAULT_GROUP,
                        help=f"consumer group, and the name offsets are stored under "
                             f"(default {DEFAULT_GROUP})")
    add_schema_option(parser)
    add_progress_option(parser)
    parser.add_argument("--batch-size", metavar="N", type=int, default=1000,
                        help="most events applied in one transaction (default 1000)")
    parser.add_argument("--synchronous-commit", choices=("off", "on"), default="off",
                        help="PostgreSQL's synchronous_commit for the batches: off "
                             "(default) does not wait for each batch's WAL flush; a "
                             "Postgres crash may then lose the last batches, which the "
                             "projector notices and applies again; on waits for every "
                             "flush, so the projection never goes back after a crash")
    add_service_options(parser)
    add_settings_options(parser, partitions=False, creates_topics=False)
    parser.set_defaults(func=run_projector)


def run_projector(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    dsn = require_dsn(settings)
    check_schema(args.schema)
    if settings.log_kind == "memory":
        raise CliError(
            "no log to read events from: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass "
            "--kafka-bootstrap (or FLOWMONKEY_DATA_DIR / --data-dir for the durable "
            "embedded log)")
    if args.progress_every <= 0:
        raise CliError(f"--progress-every must be more than 0 seconds, not {args.progress_every}")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, not {args.batch_size}")
    if not args.group.strip():
        raise CliError("--group must not be empty")
    configure_logging(args, settings)
    return asyncio.run(_Projector(args, settings, dsn).run())


def _say(text: str) -> None:
    say("projector", text)


class _Projector:
    def __init__(self, args: argparse.Namespace, settings: Settings, dsn: str) -> None:
        self.args = args
        self.settings = settings
        self.dsn = dsn
        self.stop = asyncio.Event()

    async def run(self) -> int:
        # served from the start, so a long recovery (or a stuck start) can be watched
        with serving_metrics(self.args, self.settings, _say):
            return await self._run()

    async def _run(self) -> int:
        import asyncpg

        from flowmonkey.errors import LogError
        from flowmonkey.projections.postgres import PostgresProjection, ProjectionStoreError
        from flowmonkey.projections.projector import OffsetPastEndError
        from flowmonkey.projections.service import ProjectorService

        settings, args = self.settings, self.args
        service = ProjectorService(
            settings.make_log(client_id="flowmonkey-projector"),
            PostgresProjection(self.dsn, args.schema,
                               synchronous_commit=args.synchronous_commit),
            group=args.group, batch_size=args.batch_size)
        _say(f"group {args.group}: {settings.describe_log()} -> "
             f"{settings.describe_projection(args.schema)}")
        try:
            await service.start()
        except LogError as exc:
            raise log_unreachable(exc, settings) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                ProjectionStoreError) as exc:
            raise postgres_unreachable(exc, self.dsn) from None
        except OffsetPastEndError as exc:
            # the projection is ahead of the log: following it would skip records
            raise CliError(str(exc), exit_code=EXIT_FAILED) from None
        try:
            apply_gc_option(self.args)
            return await self._serve(service)
        finally:
            _say("stopping...")
            await service.stop()
            _say(f"stopped; {service.applied_events} events applied")

    async def _serve(self, service: ProjectorService) -> int:
        stop_on_signals(self.stop)
        _say(f"migrated schema \"{self.args.schema}\"; projecting {service.topic} "
             f"({service.partitions} partitions); Ctrl-C to stop")
        last_total = 0

        def failure() -> str | None:
            error = service.failure()
            return None if error is None else \
                "projecting stopped: " + scrub(f"{type(error).__name__}: {error}", self.dsn)

        def report(span_s: float) -> None:
            nonlocal last_total
            total = service.applied_events
            _say(_progress_line(service.progress(), total, total - last_total, span_s))
            last_total = total

        return await run_until_stopped(self.stop, self.args.progress_every,
                                       failure=failure, every_interval=report)


def _progress_line(progress: list[PartitionProgress], total: int, delta: int,
                   span_s: float) -> str:
    owned = ",".join(str(p.partition) for p in progress) or "none yet"
    lags = [p.lag_ms for p in progress if p.lag_ms is not None]
    lag = f"lag {max(lags)} ms (max of last batches)" if lags else "lag -"
    skipped = sum(p.skipped_records for p in progress)
    text = (f"{total} events applied (+{delta}, {delta / span_s:.0f}/s), {lag}, "
            f"partitions {owned}")
    return f"{text}, {skipped} undecodable records skipped" if skipped else text
