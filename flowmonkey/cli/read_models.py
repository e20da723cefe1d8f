"""What the read commands (``wal list``, ``jobs``) share: the projection they read,
either PostgreSQL's tables (checked, never created) or the one an engine on the
durable embedded log would hold, rebuilt from the log into memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmonkey.cli.common import EXIT_FAILED, CliError
from flowmonkey.cli.settings import connect_postgres, postgres_unreachable

if TYPE_CHECKING:
    from flowmonkey.projections.memory import MemoryProjection
    from flowmonkey.settings import Settings


async def project_log(settings: Settings, projection: MemoryProjection,
                      client_id: str) -> None:
    """Apply the log's events (to the end offsets it has now) to ``projection``, as an
    engine's projector does at start."""
    from flowmonkey.cli.replay import open_log
    from flowmonkey.projections.projector import Projector

    async with open_log(settings, client_id) as (log, topic):
        partitions = await log.partitions_for(topic)
        ends = [await log.end_offset(topic, p) for p in range(partitions)]
        projector = Projector(log, topic, partitions, projection)
        await projector.start()
        try:
            for partition, end in enumerate(ends):
                while not await projector.wait_for_position(partition, end, 0.5):
                    failure = projector.failure()
                    if failure is not None:
                        raise CliError(f"reading {topic}[{partition}] failed: "
                                       f"{type(failure).__name__}: {failure}",
                                       exit_code=EXIT_FAILED) from failure
        finally:
            await projector.stop()


async def require_table(dsn: str, schema: str, table: str) -> None:
    """Refuse a schema without FlowMonkey's ``table``, rather than creating it: starting
    the projection migrates, and an operator who mistyped --schema wants to hear it."""
    import asyncpg

    conn = await connect_postgres(dsn)
    try:
        found = await conn.fetchval(
            "select to_regclass(format('%I.%I', $1::text, $2::text)) is not null",
            schema, table)
        tables = found or await conn.fetchval(
            "select to_regclass(format('%I.fm_executions', $1::text)) is not null", schema)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise postgres_unreachable(exc, dsn) from None
    finally:
        await conn.close()
    if found:
        return
    if tables:
        raise CliError(f'schema "{schema}" has no table {table}: its FlowMonkey tables are '
                       "older than this version",
                       hint="upgrade them with `flowmonkey migrate` (or restart the "
                            "projector, which migrates)")
    raise CliError(f'schema "{schema}" has no FlowMonkey tables',
                   hint="check --schema, or create them with `flowmonkey migrate`")
