"""FlowMonkey's PostgreSQL tables (the projection's and the processors' snapshots),
as numbered migrations applied on start.

Each migration runs once, in order, in one transaction with its row in
``<schema>.fm_schema_migrations``. A transaction-scoped advisory lock makes concurrent
starters take turns: the second one finds the migrations already recorded. Never edit
a migration that has shipped; add the next one.
"""

from __future__ import annotations

import re
from typing import Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Migration = tuple[int, str, str]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# first key of the two-key advisory lock: "fm" in ASCII, so other users of advisory
# locks in the same database are unlikely to collide with it
_LOCK_NAMESPACE: Final = 0x666D

MIGRATIONS: Final[list[Migration]] = [
    (1, "executions, events, tables, WAL, offsets, snapshots, resume tokens", """
create table fm_executions (
    id text collate "C" primary key,
    tenant_id text,
    flow_id text,
    flow_version text,
    status text,
    parent_execution_id text,
    idempotency_key text,
    wake_at bigint,
    created_at bigint,
    updated_at bigint,
    seq bigint not null,
    state jsonb,
    execution jsonb
);
create index fm_executions_status on fm_executions (status);
create index fm_executions_flow on fm_executions (flow_id, flow_version);
create index fm_executions_tenant on fm_executions (tenant_id) where tenant_id is not null;
create index fm_executions_parent on fm_executions (parent_execution_id)
    where parent_execution_id is not null;
create index fm_executions_wake_at on fm_executions (wake_at) where wake_at is not null;
create index fm_executions_idempotency on fm_executions (idempotency_key)
    where idempotency_key is not null;
create index fm_executions_newest on fm_executions (created_at desc, id desc);

create table fm_events (
    execution_id text not null,
    seq bigint not null,
    type text not null,
    version int not null,
    event_id text not null,
    timestamp_ms bigint not null,
    tenant_id text,
    command_id text,
    data jsonb not null,
    primary key (execution_id, seq)
);

create table fm_rejections (
    execution_id text not null,
    event_id text not null,
    type text not null,
    version int not null,
    timestamp_ms bigint not null,
    tenant_id text,
    command_id text,
    data jsonb not null,
    primary key (execution_id, event_id)
);

create table fm_table_defs (
    id text collate "C" primary key,
    definition jsonb not null,
    created_at bigint not null,
    updated_at bigint not null
);

create table fm_table_rows (
    table_id text collate "C" not null references fm_table_defs (id) on delete cascade,
    id text collate "C" not null,
    tenant_id text,
    data jsonb not null,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (table_id, id)
);
create index fm_table_rows_order on fm_table_rows (table_id, created_at, id);
create index fm_table_rows_tenant on fm_table_rows (table_id, tenant_id)
    where tenant_id is not null;
create index fm_table_rows_data on fm_table_rows using gin (data);

create table fm_wal_entries (
    id text primary key,
    position bigserial not null unique,
    table_id text not null,
    tenant_id text,
    data jsonb not null,
    pipe_id text not null,
    execution_id text not null,
    flow_id text,
    step_id text,
    error text not null,
    attempts int not null default 0,
    status text not null default 'pending',
    created_at bigint not null
);
create index fm_wal_entries_pending on fm_wal_entries (position) where status = 'pending';

create table fm_projection_offsets (
    group_id text not null,
    topic text not null,
    partition int not null,
    next_offset bigint not null,
    primary key (group_id, topic, partition)
);

create table fm_snapshots (
    partition int primary key,
    events_offset bigint not null,
    state bytea not null,
    created_at timestamptz not null default now()
);

create table fm_resume_tokens (
    token text primary key,
    execution_id text not null,
    tenant_id text,
    status text not null,
    created_at bigint not null,
    expires_at bigint
);
create index fm_resume_tokens_execution on fm_resume_tokens (execution_id);
"""),
    # Processor snapshots are keyed by the events topic too, since several topic
    # prefixes can share a schema. Rows of the old table cannot be told apart by topic
    # (and nothing wrote them): dropped, which costs at most one full replay.
    (2, "processor snapshots keyed by events topic and partition", """
drop table fm_snapshots;
create table fm_snapshots (
    topic text collate "C" not null,
    partition int not null,
    events_offset bigint not null,
    state bytea not null,
    created_at timestamptz not null default now(),
    primary key (topic, partition)
);
"""),
    # The public Execution JSON beside the state would double the JSON the projector
    # writes per execution and batch, and nothing reads it: the state column holds
    # everything, and reads derive the Execution from it (docs/performance.md).
    (3, "executions without the derived execution column", """
alter table fm_executions drop column execution;
"""),
    # Jobs (issue 12), open and ended, as projections/job_records.py folds them. The
    # columns are what listings filter and order by; the record is the JSON. Job events
    # projected before this migration (none: jobs came with it) would need a rebuild.
    (4, "jobs", """
create table fm_jobs (
    job_id text collate "C" primary key,
    execution_id text collate "C" not null,
    tenant_id text,
    type text not null,
    status text not null,
    worker_id text,
    created_at bigint not null,
    updated_at bigint not null,
    seq bigint not null,
    record jsonb not null
);
create index fm_jobs_newest on fm_jobs (created_at desc, job_id desc);
create index fm_jobs_status on fm_jobs (status, created_at desc, job_id desc);
create index fm_jobs_type on fm_jobs (type, created_at desc, job_id desc);
create index fm_jobs_execution on fm_jobs (execution_id, created_at desc, job_id desc);
create index fm_jobs_worker on fm_jobs (worker_id, created_at desc, job_id desc)
    where worker_id is not null;
create index fm_jobs_tenant on fm_jobs (tenant_id, created_at desc, job_id desc)
    where tenant_id is not null;
"""),
    # Triggers (issue 13), as projections/trigger_records.py folds them from the events
    # of their entities ("trigger:<id>"), listed by id. Their events stay in fm_events
    # (the audit trail) and their entity rows in fm_executions have no state, so no
    # execution query shows them.
    (5, "triggers", """
create table fm_triggers (
    id text collate "C" primary key,
    kind text not null,
    flow_id text not null,
    flow_version text,
    tenant_id text,
    enabled boolean not null,
    definition jsonb not null,
    fired bigint not null default 0,
    failed bigint not null default 0,
    skipped bigint not null default 0,
    last_fired_at bigint,
    last_execution_id text,
    last_failed_at bigint,
    last_failure jsonb,
    next_fire_at bigint,
    created_at bigint not null,
    updated_at bigint not null,
    seq bigint not null
);
create index fm_triggers_tenant on fm_triggers (tenant_id, id) where tenant_id is not null;
create index fm_triggers_flow on fm_triggers (flow_id, id);
"""),
    # Form submissions (issue 14), one row per submission as its form's partition
    # decided it (projections/form_submissions.py), listed newest first per form. The
    # form entities' events stay in fm_events, their rows in fm_executions stateless.
    (6, "form submissions", """
create table fm_form_submissions (
    form_id text collate "C" not null,
    id text collate "C" not null,
    tenant_id text,
    status text not null,
    submitted_at bigint not null,
    data jsonb,
    errors jsonb,
    execution_id text,
    duplicate_of text,
    retry_after_ms bigint,
    resumed boolean not null default false,
    primary key (form_id, id)
);
create index fm_form_submissions_recent on fm_form_submissions
    (form_id, submitted_at desc, id desc);
create index fm_form_submissions_status on fm_form_submissions
    (form_id, status, submitted_at desc, id desc);
"""),
]


def checked_schema(schema: str) -> str:
    """``schema`` as a quoted SQL identifier; ValueError unless it is a plain name."""
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}: use letters, digits and "
                         "underscores, starting with a letter or underscore (at most 63)")
    return f'"{schema}"'


async def migrate(
    conn_or_pool: asyncpg.Connection[asyncpg.Record] | asyncpg.Pool[asyncpg.Record], schema: str
) -> list[int]:
    """Apply the migrations ``schema`` lacks; the versions applied now (often [])."""
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _migrate(conn, schema)
    return await _migrate(conn_or_pool, schema)


async def _migrate(
    conn: asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record], schema: str
) -> list[int]:
    quoted = checked_schema(schema)
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))",
                           _LOCK_NAMESPACE, schema)
        # identifiers cannot be bound parameters; the name was checked above
        await conn.execute(f"create schema if not exists {quoted}")
        await conn.execute(f"set local search_path to {quoted}")
        await conn.execute("""create table if not exists fm_schema_migrations (
            version int primary key, description text not null,
            applied_at timestamptz not null default now())""")
        done = {r["version"] for r in await conn.fetch(
            "select version from fm_schema_migrations")}
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("insert into fm_schema_migrations (version, description) "
                               "values ($1, $2)", version, description)
            applied.append(version)
    return applied
