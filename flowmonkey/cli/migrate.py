"""``flowmonkey migrate``: apply the Postgres projection's schema migrations."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from flowmonkey.cli.common import EXIT_OK
from flowmonkey.cli.options import add_command, add_schema_option, add_settings_options
from flowmonkey.cli.settings import (
    check_schema,
    connect_postgres,
    postgres_unreachable,
    require_dsn,
    settings_from_args,
)
from flowmonkey.settings import redact_dsn

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers

EPILOG = """\
Migrations run in order, each once, in a transaction with its record in
SCHEMA.fm_schema_migrations; concurrent runs take turns (an advisory lock), so this is
safe to run on every deploy. `flowmonkey projector` also migrates when it starts.

examples:
  export FLOWMONKEY_POSTGRES_DSN=postgresql://flowmonkey:secret@localhost:5432/flowmonkey
  flowmonkey migrate
  flowmonkey migrate --schema staging

exit codes: 0 migrated or up to date, 1 the database could not be used,
            2 bad input (no DSN, a bad schema name)
"""


def register_migrate(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "migrate", help="migrate the Postgres schema",
        description="Create or upgrade the Postgres projection's tables in a schema and "
                    "print its version.",
        epilog=EPILOG)
    add_schema_option(parser)
    add_settings_options(parser, kafka=False, partitions=False, data_dir=False)
    parser.set_defaults(func=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    dsn = require_dsn(settings)
    check_schema(args.schema)
    applied, version = asyncio.run(_migrate(dsn, args.schema))
    where = f'schema "{args.schema}" on {redact_dsn(dsn)}'
    if applied:
        print(f"{where}: applied migration{'s' if len(applied) > 1 else ''} "
              f"{', '.join(map(str, applied))}; now at version {version}")
    else:
        print(f"{where} is up to date at version {version}")
    return EXIT_OK


async def _migrate(dsn: str, schema: str) -> tuple[list[int], int]:
    import asyncpg

    from flowmonkey.pg.schema import checked_schema, migrate

    conn = await connect_postgres(dsn)
    try:
        applied = await migrate(conn, schema)
        # the name was checked: identifiers cannot be bound parameters
        await conn.execute(f"set search_path to {checked_schema(schema)}")
        version: int = await conn.fetchval("select max(version) from fm_schema_migrations")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise postgres_unreachable(exc, dsn) from None
    finally:
        await conn.close()
    return applied, version
