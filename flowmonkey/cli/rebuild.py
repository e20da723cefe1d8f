"""``flowmonkey rebuild``: project the whole log into a fresh schema, and optionally
swap it in for the current one (FEATURES F6). The logic is in
:mod:`flowmonkey.projections.rebuild`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TYPE_CHECKING

from flowmonkey.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CliError
from flowmonkey.cli.options import (
    add_command,
    add_progress_option,
    add_schema_option,
    add_settings_options,
)
from flowmonkey.cli.settings import postgres_unreachable, require_dsn, scrub, settings_from_args

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.projections.rebuild import RebuildProgress, RebuildResult
    from flowmonkey.settings import Settings

EPILOG = """\
The events topic is projected from offset 0 into the --into schema under a projector
group of its own, until every partition reaches the end offset it had at the start.
Table definitions are not in the log, so they are copied from --schema first; data
table rows and WAL entries are copied too (rows inserted through the API are not in
the log), unless --rows-from log. With --swap both schemas are renamed in one
transaction (--schema -> <schema>_old_<timestamp>, --into -> --schema), so readers
switch at once. Stop the projectors of --schema before a swap and start them after:
they resume from the rebuilt schema's offsets. The swap refuses while a projector of
--schema is still ahead of the rebuild.

examples:
  export FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey rebuild --into flowmonkey_new            # then compare, then:
  flowmonkey rebuild --into flowmonkey_new --force --swap

exit codes: 0 rebuilt (and swapped), 1 Kafka or Postgres could not be used, the
            rebuild or the swap failed, 2 bad input (the schema has tables, a bad option)
"""


def register_rebuild(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "rebuild", help="rebuild the projection from the log",
        description="Project the whole events log into a fresh PostgreSQL schema and "
                    "print counts; with --swap make it the current schema.",
        epilog=EPILOG)
    parser.add_argument("--into", metavar="SCHEMA", required=True,
                        help="the schema to rebuild into (must have no tables)")
    add_schema_option(parser)
    parser.add_argument("--swap", action="store_true",
                        help="then rename --schema to <schema>_old_<timestamp> and --into "
                             "to --schema, in one transaction")
    parser.add_argument("--force", action="store_true",
                        help="drop --into first if it has tables")
    parser.add_argument("--rows-from", choices=("current", "log"), default="current",
                        help="data-table rows and WAL entries: copied from --schema "
                             "(default) or from the log's pipe rows alone")
    parser.add_argument("--group", metavar="NAME",
                        help="the projector group the rebuild's offsets are stored under "
                             "(default flowmonkey-rebuild-<timestamp>)")
    parser.add_argument("--batch-size", metavar="N", type=int, default=2000,
                        help="most events applied in one transaction (default 2000)")
    add_progress_option(parser, where="on stderr")
    add_settings_options(parser, partitions=False, creates_topics=False)
    parser.set_defaults(func=run_rebuild)


def _checked(name: str, option: str) -> None:
    from flowmonkey.pg.schema import checked_schema

    try:
        checked_schema(name)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def run_rebuild(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    dsn = require_dsn(settings)
    _checked(args.schema, "--schema")
    _checked(args.into, "--into")
    if args.into == args.schema:
        raise CliError(f"--into must name a new schema, not the current one ({args.schema})")
    if settings.log_kind == "memory":
        raise CliError(
            "no log to rebuild from: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass "
            "--kafka-bootstrap (or FLOWMONKEY_DATA_DIR / --data-dir for the durable "
            "embedded log)")
    if args.batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, not {args.batch_size}")
    if args.progress_every <= 0:
        raise CliError(f"--progress-every must be more than 0 seconds, not "
                       f"{args.progress_every}")
    group = args.group or f"flowmonkey-rebuild-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    if not group.strip():
        raise CliError("--group must not be empty")
    return asyncio.run(_run(args, settings, dsn, group))


async def _run(args: argparse.Namespace, settings: Settings, dsn: str, group: str) -> int:
    import asyncpg

    from flowmonkey.cli.replay import open_log
    from flowmonkey.projections.rebuild import BAD_TARGET, RebuildError, rebuild

    last = [time.monotonic()]

    def progress(p: RebuildProgress) -> None:
        now = time.monotonic()
        if now - last[0] < args.progress_every:
            return
        last[0] = now
        share = f" ({100 * p.position // p.target}%)" if p.target else ""
        print(f"rebuild: {p.position} of {p.target} records{share}, "
              f"{p.applied_events} events applied", file=sys.stderr, flush=True)

    async with open_log(settings, "flowmonkey-rebuild") as (log, topic):
        print(f"rebuild: {settings.describe_log()} ({topic}) -> schema \"{args.into}\" "
              f"(group {group})", file=sys.stderr, flush=True)
        try:
            result = await rebuild(log, dsn, topic, current=args.schema, into=args.into,
                                   group=group, force=args.force, rows_from=args.rows_from,
                                   do_swap=args.swap, batch_size=args.batch_size,
                                   on_progress=progress)
        except RebuildError as exc:
            bad_input = exc.code == BAD_TARGET
            raise CliError(scrub(str(exc), dsn),
                           exit_code=EXIT_BAD_INPUT if bad_input else EXIT_FAILED) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise postgres_unreachable(exc, dsn) from None
    _print_result(result, args.schema)
    return EXIT_OK


def _print_result(result: RebuildResult, current: str) -> None:
    swapped = result.swapped
    print(f"projected {result.applied_events} events ({sum(result.ends)} log offsets in "
          f"{len(result.ends)} partitions) into schema \"{result.into}\" under group "
          f"{result.group}")
    for table, copied in result.copied.items():
        print(f"  copied {copied} rows of {table} from \"{current}\"")
    if result.previous is None and not swapped:
        print(f"  schema \"{current}\" has no projection: no table definitions were copied, "
              "so pipe rows went to the WAL")
    columns = [f'"{current}" (rebuilt)' if swapped else f'"{result.into}"']
    if result.previous is not None:
        columns.append(f'"{result.old_schema or current}"')
    widths = [max(len(c), 10) for c in columns]
    print("  " + f"{'table':<18}" + "".join(f" {c:>{w}}" for c, w in zip(columns, widths,
                                                                        strict=True)))
    for table, count in result.counts.items():
        values = [count] + ([result.previous.get(table, 0)] if result.previous is not None
                            else [])
        print("  " + f"{table:<18}" + "".join(f" {v:>{w}}" for v, w in zip(values, widths,
                                                                           strict=True)))
    if swapped:
        print(f"swapped: \"{result.into}\" is now \"{current}\"" + (
            f"; the previous one is \"{result.old_schema}\" (drop it once you are satisfied)"
            if result.old_schema else ""))
