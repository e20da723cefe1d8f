"""The PostgreSQL projection's resume tokens (``fm_resume_tokens``): written in the
batch transaction from the token events, and looked up by token (which execution a
reply or a submission carrying only a token is for)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    Conn = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]

_TOKEN_STATUS = {n.TOKEN_USED: "used", n.TOKEN_REVOKED: "revoked"}
TOKEN_EVENTS = frozenset({n.TOKEN_CREATED, n.TOKENS_CLEANED, *_TOKEN_STATUS})


async def write_token_event(conn: Conn, event: Event) -> None:
    """The token row(s) ``event`` (one of :data:`TOKEN_EVENTS`) creates or changes."""
    if event.type == n.TOKENS_CLEANED:
        await conn.execute(
            "update fm_resume_tokens set status = 'expired' where token = any($1) "
            "and execution_id = $2", list(event.data["tokens"]), event.execution_id)
        return
    token = event.data["token"]
    if event.type == n.TOKEN_CREATED:
        await conn.execute(
            "insert into fm_resume_tokens (token, execution_id, tenant_id, status, "
            "created_at, expires_at) values ($1, $2, $3, 'active', $4, $5) "
            "on conflict do nothing", token, event.execution_id, event.tenant_id,
            event.timestamp_ms, event.data.get("expires_at"))
    else:
        await conn.execute(
            "update fm_resume_tokens set status = $3 where token = $1 "
            "and execution_id = $2", token, event.execution_id, _TOKEN_STATUS[event.type])


async def token_execution(pool: Pool, token: str) -> str | None:
    found: str | None = await pool.fetchval(
        "select execution_id from fm_resume_tokens where token = $1", token)
    return found
