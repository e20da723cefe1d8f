"""The PostgreSQL pool every Postgres-backed store shares (the projection, the
processors' snapshot store): one schema, migrated when the pool starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import asyncpg

from flowmonkey.pg.schema import checked_schema, migrate


class ConnectionInit(Protocol):
    """Prepares each new connection of a pool (e.g. registers codecs)."""

    async def __call__(self, con: asyncpg.Connection[asyncpg.Record], /) -> None: ...


async def _keep_session(con: asyncpg.Connection[asyncpg.Record]) -> None:
    """Return a connection to the pool as it is.

    asyncpg rolls back an open transaction on release whatever ``reset`` is; its
    default reset then also runs ``RESET ALL``, ``UNLISTEN *``, ``CLOSE ALL`` and
    ``pg_advisory_unlock_all()``: one more round trip per acquire (every create and
    every projected batch acquires, a visible share of the engine process's CPU on
    Kafka + PostgreSQL), and work for the server. Nothing here leaves session state
    behind: settings are ``set local``, the advisory lock is transaction-scoped, the
    search path is a start-up setting, and no connection LISTENs or keeps a cursor
    outside its transaction.
    """


class SchemaPool:
    """An asyncpg pool whose connections work in one schema, migrated when it starts:
    the lifecycle every Postgres-backed store shares (the projection, the processors'
    snapshot store). ``not_started`` makes the error for use before :meth:`start`."""

    def __init__(self, dsn: str, schema: str, *, min_size: int, max_size: int,
                 not_started: Callable[[], Exception],
                 init: ConnectionInit | None = None) -> None:
        self._quoted_schema = checked_schema(schema)
        self._dsn = dsn
        self.schema = schema
        self._min_size, self._max_size = min_size, max_size
        self._not_started = not_started
        self._init = init
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    async def start(self) -> None:
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self._dsn, min_size=self._min_size, max_size=self._max_size, init=self._init,
            server_settings={"search_path": self._quoted_schema}, reset=_keep_session)
        try:
            await migrate(pool, self.schema)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise self._not_started()
        return self._pool
