"""``flowmonkey wal``: list, replay and compact the pipe WAL.

A pipe row that cannot be written into its table (an invalid row, a table not created
yet) is kept in the WAL with the reason, and never stops the execution that produced
it. On the Postgres projection the WAL is the table ``fm_wal_entries``: these commands
let an operator see those rows, retry them once the cause is fixed, and remove the ones
already written.

On the durable embedded log (``--data-dir``) the engine's projection is in memory, and
so is its WAL: the engine rebuilds both from the log at every start, writing each pipe
row into the tables its app defines then. ``wal list --data-dir`` does the same (the
log's events into a memory projection with the tables of ``--app``/``--flows-dir``)
and lists what stays pending. There is nothing stored to replay or compact: restarting
the engine with the cause fixed is the replay, so those two say so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from flowmonkey.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Bundle,
    CliError,
    load_apps,
)
from flowmonkey.cli.options import (
    add_actions,
    add_app_options,
    add_command,
    add_schema_option,
    add_settings_options,
)
from flowmonkey.cli.read_models import project_log, require_table
from flowmonkey.cli.settings import (
    DSN_EXAMPLE,
    check_schema,
    postgres_unreachable,
    require_dsn,
    settings_from_args,
)

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.projections.base import WalEntry
    from flowmonkey.projections.postgres import PostgresProjection
    from flowmonkey.settings import Settings

T = TypeVar("T")

EPILOG = """\
Each pipe row that could not land in its table is a pending WAL entry with the reason.
Fix the cause (create the table, or correct the flow's pipe), then replay: an entry
whose row now inserts is acked; one that still fails stays pending with the new reason
and one more attempt counted. Compact removes acked entries.

On the durable embedded log (--data-dir, or FLOWMONKEY_DATA_DIR without a DSN) the
WAL is not stored: the engine keeps it in memory and rebuilds it from the log at every
start, writing each pipe row into the tables its app defines then. `wal list --data-dir`
rebuilds it the same way, with the tables of --app/--flows-dir (give the engine's), and
lists what stays pending; stop the engine first (one process opens the log). There,
replay is restarting the engine once the cause is fixed (list with the fixed app first
to see the entries go), and there is nothing to compact: `wal replay` and `wal compact`
say so and exit 2. In a running engine, `await engine.projection.wal_replay()`.

examples:
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey wal list
  flowmonkey wal list --format json --limit 1000
  flowmonkey wal replay --limit 500
  flowmonkey wal compact
  flowmonkey wal list --data-dir ./state --app myapp.flows:app   # the embedded log

exit codes: 0 done (replay: no entry failed), 1 the database or log could not be
            used, or (replay) some entries still fail, 2 bad input (no DSN or data
            directory, a bad schema, no FlowMonkey tables in the schema; replay or
            compact on the embedded log)
"""


def register_wal(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "wal", help="list, replay or compact the pipe WAL",
        description="Work with the write-ahead log of pipe rows that could not be "
                    "written into their table: the PostgreSQL projection's, or (list "
                    "only) the one the engine rebuilds from the embedded log in "
                    "--data-dir.",
        epilog=EPILOG)
    actions = add_actions(parser, "wal_action", "list, replay or compact")
    listing = add_command(actions, "list", help="print the pending entries, oldest first",
                          description="Print the pending WAL entries, oldest first.",
                          epilog=EPILOG)
    listing.add_argument("--limit", type=_positive, default=100,
                         help="at most this many entries (default 100)")
    listing.add_argument("--format", choices=["text", "json"], default="text",
                         help="text (default) or one JSON document")
    replay = add_command(actions, "replay", help="retry the pending entries",
                         description="Retry the oldest pending entries: each row that now "
                                     "inserts is acked; the others stay pending with the "
                                     "latest reason.",
                         epilog=EPILOG)
    replay.add_argument("--limit", type=_positive, default=1000,
                        help="retry at most this many entries (default 1000)")
    compact = add_command(actions, "compact", help="remove the acked entries",
                          description="Remove the WAL entries that were replayed.",
                          epilog=EPILOG)
    add_app_options(
        listing,
        app_help="with --data-dir: the tables pipe rows are written into, from an object "
                 "or module with `tables` (the engine's app); repeatable",
        flows_dir_help="with --data-dir: tables from the {\"flows\": [...], \"tables\": "
                       "[...]} files in DIR; repeatable")
    for sub in (listing, replay, compact):
        add_schema_option(sub)
        add_settings_options(sub, kafka=False, partitions=False)
    listing.set_defaults(func=_command(_list, embedded=_list_embedded))
    replay.set_defaults(func=_command(_replay, embedded=_not_stored("replay")))
    compact.set_defaults(func=_command(_compact, embedded=_not_stored("compact")))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


Action = Callable[["PostgresProjection", argparse.Namespace], Awaitable[int]]


EmbeddedAction = Callable[["Settings", argparse.Namespace], int]


def _command(action: Action, *, embedded: EmbeddedAction) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = settings_from_args(args)
        if args.data_dir is not None and args.postgres_dsn is not None:
            raise CliError("give --data-dir (the embedded log) or --postgres-dsn (the "
                           "Postgres projection), not both")
        if args.data_dir is not None or (settings.data_dir is not None
                                         and not settings.postgres_dsn):
            return embedded(settings, args)
        if not settings.postgres_dsn:
            raise CliError(NO_DSN_OR_DATA_DIR, hint=f"e.g. export FLOWMONKEY_POSTGRES_DSN="
                           f"{DSN_EXAMPLE}, or --data-dir ./state")
        if getattr(args, "app", None) or getattr(args, "flows_dir", None):
            raise CliError("--app and --flows-dir go with --data-dir: the Postgres "
                           "projection has its own table definitions")
        dsn = require_dsn(settings)
        check_schema(args.schema)
        return asyncio.run(_with_projection(dsn, args, action))
    return run


NO_DSN_OR_DATA_DIR = ("no WAL to work on: set FLOWMONKEY_POSTGRES_DSN or pass --postgres-dsn "
                      "(the Postgres projection), or pass --data-dir DIR (the durable "
                      "embedded log)")


def _not_stored(action: str) -> EmbeddedAction:
    def refuse(settings: Settings, args: argparse.Namespace) -> int:
        what = ("replay: the entries are retried whenever the engine starts, which "
                "rebuilds the WAL from the log with the tables its app defines then. Fix "
                "the cause (add the table to the app's `tables`, or correct the flow's "
                "pipe), check with `flowmonkey wal list --data-dir DIR --app MODULE` that "
                "the entries are gone, and restart the engine; a running engine retries "
                "them with `await engine.projection.wal_replay()`"
                if action == "replay" else
                "compact: the engine keeps no acked entries across starts (it rebuilds the "
                "WAL from the log each time)")
        raise CliError(f"the embedded log's WAL is not stored, so there is nothing to "
                       f"{what}")
    return refuse


def _list_embedded(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    assert settings.data_dir is not None
    if not Path(settings.data_dir).is_dir():
        raise CliError(f"data directory not found: {settings.data_dir}",
                       hint="give the --data-dir (or FLOWMONKEY_DATA_DIR) the engine uses")
    bundle = load_apps(args.app, args.flows_dir)
    entries = asyncio.run(_embedded_wal(settings, bundle, args.limit))
    if entries and not bundle.tables:
        print("note: no tables given (--app or --flows-dir): every pipe row is listed as "
              "pending; give the engine's app to see only the rows that do not land",
              file=sys.stderr)
    return _print_entries(entries, args, f"the log in {settings.data_dir}")


async def _embedded_wal(settings: Settings, bundle: Bundle, limit: int) -> list[WalEntry]:
    """The WAL the engine would hold after a start: the log's events applied to a memory
    projection with ``bundle``'s tables, as the engine's projector does."""
    from flowmonkey.projections.memory import MemoryProjection

    projection = MemoryProjection()
    await projection.start()
    for table in bundle.tables:
        await projection.create_table(table)
    await project_log(settings, projection, "flowmonkey-wal")
    try:
        return await projection.wal_pending(limit)
    finally:
        await projection.close()


async def _with_projection(dsn: str, args: argparse.Namespace, action: Action) -> int:
    import asyncpg

    from flowmonkey.projections.postgres import PostgresProjection

    await require_table(dsn, args.schema, "fm_wal_entries")
    # One connection is enough: replay takes its entries before it writes.
    projection = PostgresProjection(dsn, args.schema, pool_min=1, pool_max=1)
    try:
        await projection.start()
        return await action(projection, args)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise postgres_unreachable(exc, dsn) from None
    finally:
        await projection.close()


async def _list(projection: PostgresProjection, args: argparse.Namespace) -> int:
    entries = await projection.wal_pending(args.limit)
    return _print_entries(entries, args, f'schema "{args.schema}"')


def _print_entries(entries: list[WalEntry], args: argparse.Namespace, where: str) -> int:
    if args.format == "json":
        print(json.dumps([_entry_json(e) for e in entries], indent=2))
        return EXIT_OK
    if not entries:
        print(f"no pending WAL entries in {where}")
        return EXIT_OK
    for entry in entries:
        where = f"{entry.flow_id or '?'}/{entry.step_id or '?'} pipe {entry.pipe_id}"
        print(f"{entry.id}  table {entry.table_id}  execution {entry.execution_id}  "
              f"{where}  attempts {entry.attempts}\n    {entry.error}")
    more = " (there may be more: raise --limit)" if len(entries) == args.limit else ""
    print(f"{len(entries)} pending entr{'y' if len(entries) == 1 else 'ies'}{more}")
    return EXIT_OK


def _entry_json(entry: WalEntry) -> dict[str, object]:
    return entry.model_dump(mode="json")


async def _replay(projection: PostgresProjection, args: argparse.Namespace) -> int:
    print(f"replaying up to {args.limit} pending entries …", file=sys.stderr)
    result = await projection.wal_replay(args.limit)
    if result.replayed == result.failed == 0:
        print(f'no pending WAL entries in schema "{args.schema}"')
        return EXIT_OK
    print(f"replayed {result.replayed}, still failing {result.failed}")
    if result.failed:
        print("see why with `flowmonkey wal list`; fix the cause and replay again",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


async def _compact(projection: PostgresProjection, args: argparse.Namespace) -> int:
    removed = await projection.wal_compact()
    print(f"removed {removed} acked entr{'y' if removed == 1 else 'ies'}")
    return EXIT_OK
