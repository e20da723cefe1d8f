"""`flowmonkey wal list | replay | compact` against a real PostgreSQL projection."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from flowmonkey.projections.postgres import PostgresProjection
from tests.contract.projection_contract import ORDERS, created, pipe_row

pytestmark = pytest.mark.integration

FLOWMONKEY = str(Path(sys.executable).parent / "flowmonkey")


@dataclass
class Done:
    code: int
    out: str
    err: str


async def _wal(*args: str, dsn: str | None) -> Done:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    if dsn is not None:
        env["FLOWMONKEY_POSTGRES_DSN"] = dsn
    process = await asyncio.create_subprocess_exec(
        FLOWMONKEY, "wal", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def test_a_row_for_a_missing_table_is_listed_replayed_once_the_table_exists_and_compacted(
    pg_schema: tuple[str, str],
) -> None:
    dsn, schema = pg_schema
    projection = PostgresProjection(dsn, schema)
    await projection.start()
    try:
        await projection.apply_events([created("e1", tenant="acme"),
                                       pipe_row("e1", 2, {"sku": "a"}, tenant="acme")])
        [entry] = await projection.wal_pending()

        listed = await _wal("list", "--schema", schema, dsn=dsn)
        assert listed.code == 0, listed.err
        assert entry.id in listed.out
        assert "table orders  execution e1  orders/charge pipe to-orders  attempts 0" \
            in listed.out
        assert entry.error in listed.out
        assert "1 pending entry" in listed.out

        as_json = await _wal("list", "--schema", schema, "--format", "json", dsn=dsn)
        [item] = json.loads(as_json.out)
        assert (item["id"], item["data"], item["tenant_id"], item["status"]) == (
            entry.id, {"sku": "a"}, "acme", "pending")

        failing = await _wal("replay", "--schema", schema, dsn=dsn)
        assert failing.code == 1
        assert "replayed 0, still failing 1" in failing.out
        assert "flowmonkey wal list" in failing.err
        [retried] = await projection.wal_pending()
        assert retried.attempts == 1

        await projection.create_table(ORDERS)
        replayed = await _wal("replay", "--schema", schema, dsn=dsn)
        assert replayed.code == 0, replayed.err
        assert "replayed 1, still failing 0" in replayed.out
        assert await projection.wal_pending() == []

        compacted = await _wal("compact", "--schema", schema, dsn=dsn)
        assert (compacted.code, compacted.out.strip()) == (0, "removed 1 acked entry")
        nothing = await _wal("list", "--schema", schema, dsn=dsn)
        assert nothing.out.strip() == f'no pending WAL entries in schema "{schema}"'
        again = await _wal("replay", "--schema", schema, dsn=dsn)
        assert (again.code, again.out.strip()) == (
            0, f'no pending WAL entries in schema "{schema}"')
    finally:
        await projection.close()


async def test_a_schema_without_flowmonkey_tables_is_refused_and_left_alone(
    pg_schema: tuple[str, str],
) -> None:
    dsn, schema = pg_schema
    done = await _wal("list", "--schema", schema, dsn=dsn)
    assert done.code == 2
    assert f'schema "{schema}" has no FlowMonkey tables' in done.err
    assert "flowmonkey migrate" in done.err
    # nothing was created in the schema: the command did not migrate it
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetchval(
            "select count(*) from information_schema.tables where table_schema = $1", schema)
    finally:
        await conn.close()
    assert tables == 0


async def test_wal_without_a_dsn_says_how_to_give_one() -> None:
    done = await _wal("compact", dsn=None)
    assert done.code == 2
    assert "set FLOWMONKEY_POSTGRES_DSN or pass --postgres-dsn" in done.err


async def test_wal_without_an_action_shows_the_actions() -> None:
    done = await _wal(dsn=None)
    assert done.code == 2
    actions = [line.split()[0] for line in done.err.splitlines() if line.startswith("    ")]
    assert actions[:3] == ["list", "replay", "compact"]
