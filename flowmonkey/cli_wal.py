"""``flowmonkey wal``: list, replay and compact the pipe WAL of the Postgres projection.

A pipe row that cannot be written into its table (an invalid row, a table not created
yet) is kept in ``fm_wal_entries`` with the reason, and never stops the execution that
produced it. These commands let an operator see those rows, retry them once the cause
is fixed, and remove the ones already written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from flowmonkey.cli_common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CliError, add_command
from flowmonkey.cli_settings import (
    add_schema_option,
    add_settings_options,
    check_schema,
    connect_postgres,
    postgres_unreachable,
    require_dsn,
    settings_from_args,
)

if TYPE_CHECKING:
    from flowmonkey.cli_common import Subparsers
    from flowmonkey.projections.base import WalEntry
    from flowmonkey.projections.postgres import PostgresProjection

T = TypeVar("T")

EPILOG = """\
Each pipe row that could not land in its table is a pending WAL entry with the reason.
Fix the cause (create the table, or correct the flow's pipe), then replay: an entry
whose row now inserts is acked; one that still fails stays pending with the new reason
and one more attempt counted. Compact removes acked entries.

examples:
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey wal list
  flowmonkey wal list --format json --limit 1000
  flowmonkey wal replay --limit 500
  flowmonkey wal compact

exit codes: 0 done (replay: no entry failed), 1 the database could not be used, or
            (replay) some entries still fail, 2 bad input (no DSN, a bad schema, no
            FlowMonkey tables in the schema)
"""


def register_wal(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "wal", help="list, replay or compact the pipe WAL",
        description="Work with the write-ahead log of pipe rows that could not be "
                    "written into their table (PostgreSQL projection).",
        epilog=EPILOG)
    actions = parser.add_subparsers(dest="wal_action", metavar="ACTION")

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        print("error: no action given; choose list, replay or compact (above)", file=sys.stderr)
        return EXIT_BAD_INPUT

    parser.set_defaults(func=no_action)
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
    for sub in (listing, replay, compact):
        add_schema_option(sub)
        add_settings_options(sub, kafka=False, partitions=False, data_dir=False)
    listing.set_defaults(func=_command(_list))
    replay.set_defaults(func=_command(_replay))
    compact.set_defaults(func=_command(_compact))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


Action = Callable[["PostgresProjection", argparse.Namespace], Awaitable[int]]


def _command(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        dsn = require_dsn(settings_from_args(args))
        check_schema(args.schema)
        return asyncio.run(_with_projection(dsn, args, action))
    return run


async def _with_projection(dsn: str, args: argparse.Namespace, action: Action) -> int:
    import asyncpg

    from flowmonkey.projections.postgres import PostgresProjection

    await _require_tables(dsn, args.schema)
    # One connection is enough: replay takes its entries before it writes.
    projection = PostgresProjection(dsn, args.schema, pool_min=1, pool_max=1)
    try:
        await projection.start()
        return await action(projection, args)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise postgres_unreachable(exc, dsn) from None
    finally:
        await projection.close()


async def _require_tables(dsn: str, schema: str) -> None:
    """Refuse a schema without FlowMonkey's tables, rather than creating them: starting
    the projection migrates, and an operator who mistyped --schema wants to hear it."""
    import asyncpg

    conn = await connect_postgres(dsn)
    try:
        found = await conn.fetchval(
            "select to_regclass(format('%I.fm_wal_entries', $1::text)) is not null", schema)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise postgres_unreachable(exc, dsn) from None
    finally:
        await conn.close()
    if not found:
        raise CliError(f'schema "{schema}" has no FlowMonkey tables',
                       hint="check --schema, or create them with `flowmonkey migrate`")


async def _list(projection: PostgresProjection, args: argparse.Namespace) -> int:
    entries = await projection.wal_pending(args.limit)
    if args.format == "json":
        print(json.dumps([_entry_json(e) for e in entries], indent=2))
        return EXIT_OK
    if not entries:
        print(f'no pending WAL entries in schema "{args.schema}"')
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
