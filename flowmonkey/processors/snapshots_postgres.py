"""Snapshots in Postgres (asyncpg): one row per events (topic, partition) in the
``fm_snapshots`` table of the projection's schema, migrated on start."""

from __future__ import annotations

import asyncpg

from flowmonkey.pg.pool import SchemaPool
from flowmonkey.processors.snapshots import Snapshot, SnapshotStoreError

# The row moves only forwards: a processor that lost its partition and has not
# noticed yet may still save a snapshot older than its successor's.
_UPSERT = """
insert into fm_snapshots (topic, partition, events_offset, state)
values ($1, $2, $3, $4)
on conflict (topic, partition) do update
set events_offset = excluded.events_offset, state = excluded.state, created_at = now()
where fm_snapshots.events_offset <= excluded.events_offset"""
_STORE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_SELECT = ("select events_offset, state from fm_snapshots "
           "where topic = $1 and partition = $2")


class PostgresSnapshotStore:
    """:class:`~flowmonkey.processors.snapshots.SnapshotStore` in a Postgres schema."""

    def __init__(self, dsn: str, schema: str = "flowmonkey", *, pool_max: int = 2) -> None:
        # a processor saves one snapshot at a time; a few pools' worth of partitions
        # recovering at once share the connections
        self._store = SchemaPool(
            dsn, schema, min_size=1, max_size=pool_max,
            not_started=lambda: SnapshotStoreError(
                "the Postgres snapshot store is not started: await start() first"))
        self.schema = schema

    async def start(self) -> None:
        await self._store.start()

    async def close(self) -> None:
        await self._store.close()

    @property
    def _pool(self) -> asyncpg.Pool[asyncpg.Record]:
        return self._store.pool

    async def load(self, topic: str, partition: int) -> Snapshot | None:
        pool = self._pool
        try:
            row = await pool.fetchrow(_SELECT, topic, partition)
        except _STORE_ERRORS as exc:
            raise SnapshotStoreError(
                f"could not load the snapshot of {topic}[{partition}] from schema "
                f'"{self.schema}": {type(exc).__name__}: {exc}') from exc
        if row is None:
            return None
        return Snapshot(topic, partition, row["events_offset"], bytes(row["state"]))

    async def save(self, snapshot: Snapshot) -> None:
        pool = self._pool
        try:
            await pool.execute(_UPSERT, snapshot.topic, snapshot.partition,
                               snapshot.events_offset, snapshot.state)
        except _STORE_ERRORS as exc:
            raise SnapshotStoreError(
                f"could not save the snapshot of {snapshot.topic}[{snapshot.partition}] "
                f"as of offset {snapshot.events_offset} in schema \"{self.schema}\": "
                f"{type(exc).__name__}: {exc}") from exc
