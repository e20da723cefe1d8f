"""The snapshot store contract on :class:`PostgresSnapshotStore`, each test in a schema
of its own; and the migration that keys snapshots by topic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from flowmonkey.pg.schema import MIGRATIONS
from flowmonkey.processors.snapshots import Snapshot, SnapshotStore, SnapshotStoreError
from flowmonkey.processors.snapshots_postgres import PostgresSnapshotStore
from tests.contract.snapshot_contract import SnapshotStoreContract

pytestmark = pytest.mark.integration


class TestPostgresSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    async def store(self, pg_schema: tuple[str, str]) -> AsyncIterator[SnapshotStore]:
        dsn, schema = pg_schema
        store = PostgresSnapshotStore(dsn, schema)
        await store.start()
        yield store
        await store.close()


def test_the_postgres_store_satisfies_the_protocol() -> None:
    assert isinstance(PostgresSnapshotStore("postgresql://unused"), SnapshotStore)


async def test_an_unstarted_store_says_to_start_it() -> None:
    with pytest.raises(SnapshotStoreError, match="start"):
        await PostgresSnapshotStore("postgresql://unused").load("t.events", 0)


async def test_a_schema_at_the_first_migration_is_migrated_to_topic_keyed_snapshots(
        pg_schema: tuple[str, str]) -> None:
    # given a schema migrated before snapshots were keyed by topic, with an old row
    dsn, schema = pg_schema
    conn = await asyncpg.connect(dsn)
    try:
        version, description, sql = MIGRATIONS[0]
        assert version == 1
        await conn.execute(f'set search_path to "{schema}"')
        await conn.execute("create table fm_schema_migrations (version int primary key, "
                           "description text not null, applied_at timestamptz not null "
                           "default now())")
        await conn.execute(sql)
        await conn.execute("insert into fm_schema_migrations (version, description) "
                           "values ($1, $2)", version, description)
        await conn.execute("insert into fm_snapshots (partition, events_offset, state) "
                           "values (0, 7, 'x')")
    finally:
        await conn.close()
    # when a store starts on it
    store = PostgresSnapshotStore(dsn, schema)
    await store.start()
    try:
        # then the unattributable row is gone and snapshots are kept per topic
        assert await store.load("a.events", 0) is None
        await store.save(Snapshot("a.events", 0, 9, b"a"))
        await store.save(Snapshot("b.events", 0, 3, b"b"))
        assert await store.load("a.events", 0) == Snapshot("a.events", 0, 9, b"a")
        assert await store.load("b.events", 0) == Snapshot("b.events", 0, 3, b"b")
    finally:
        await store.close()
