"""The statement that writes a batch of the PostgreSQL projection: its events,
executions and consumer offsets in one round trip, the offsets as a compare-and-set.
Its parameters are the columns of each part, in :data:`EVENT_COLUMNS`' and
``fm_executions``' order (``PostgresProjection._apply_txn`` builds them)."""

# Assembled from constant fragments and $n placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson


def json_text(value: Any) -> str:
    """``value`` as JSON text for a jsonb parameter."""
    text = orjson.dumps(value).decode()
    if "\\u0000" in text:
        # PostgreSQL's jsonb cannot hold U+0000 and refuses the whole statement, which
        # would stop the projector on one handler's output: the character is stored as
        # U+FFFD instead (the log keeps the exact value; replay gives it back).
        text = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
    return text


# "\u0000" where the backslash starts an escape: after an even number of backslashes
# (a string holding a backslash then "u0000" is written "\\u0000" and is left alone)
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


EVENT_COLUMNS = ("execution_id, seq, type, version, event_id, timestamp_ms, tenant_id, "
                  "command_id, data")
# Batches are written column-wise through unnest(): one statement for the whole batch.
# Row by row (executemany) Postgres plans and runs one insert per event, about twice the
# server CPU per step (docs/performance.md).
_EVENT_TYPES = ("text", "bigint", "text", "int", "text", "bigint", "text", "text", "jsonb")
_EXECUTION_COLUMNS = ("id, tenant_id, flow_id, flow_version, status, parent_execution_id, "
                      "idempotency_key, wake_at, created_at, updated_at, seq, state")
_EXECUTION_TYPES = ("text", "text", "text", "text", "text", "text", "text", "bigint",
                    "bigint", "bigint", "bigint", "jsonb")
_OFFSET_TYPES = ("text", "text", "int", "bigint", "bigint")


def unnest_params(types: Sequence[str], first: int) -> str:
    """``unnest`` of one array parameter per column, from ``$first``; JSON travels as
    text and is cast on the server (asyncpg encoding jsonb[] element by element costs
    the client as much as it saves the server)."""
    return "unnest(" + ", ".join(
        f"${first + i}::text[]::jsonb[]" if t == "jsonb" else f"${first + i}::{t}[]"
        for i, t in enumerate(types)) + ")"


EVENT_WIDTH = len(_EVENT_TYPES)
EXECUTION_WIDTH = len(_EXECUTION_TYPES)
OFFSET_WIDTH = len(_OFFSET_TYPES)
_OFFSETS = unnest_params(_OFFSET_TYPES, 1 + EVENT_WIDTH + EXECUTION_WIDTH)
_SYNC_PARAM = 1 + EVENT_WIDTH + EXECUTION_WIDTH + OFFSET_WIDTH
WRITE_BATCH = f"""
with events as (
    insert into fm_events ({EVENT_COLUMNS}) select * from {unnest_params(_EVENT_TYPES, 1)}
    on conflict do nothing),
executions as (
    insert into fm_executions ({_EXECUTION_COLUMNS})
    select * from {unnest_params(_EXECUTION_TYPES, 1 + EVENT_WIDTH)}
    on conflict (id) do update set tenant_id = excluded.tenant_id,
        flow_id = excluded.flow_id, flow_version = excluded.flow_version,
        status = excluded.status, parent_execution_id = excluded.parent_execution_id,
        idempotency_key = excluded.idempotency_key, wake_at = excluded.wake_at,
        created_at = excluded.created_at, updated_at = excluded.updated_at,
        seq = excluded.seq, state = excluded.state
    where fm_executions.seq < excluded.seq),
offsets_moved as (
    update fm_projection_offsets o
    set next_offset = greatest(o.next_offset, b.next_offset)
    from {_OFFSETS} as b(group_id, topic, partition, since, next_offset)
    where o.group_id = b.group_id and o.topic = b.topic and o.partition = b.partition
        and o.next_offset >= b.since
    returning 1),
offsets_new as (
    insert into fm_projection_offsets (group_id, topic, partition, next_offset)
    select b.group_id, b.topic, b.partition, b.next_offset
    from {_OFFSETS} as b(group_id, topic, partition, since, next_offset)
    where b.since = 0
    on conflict (group_id, topic, partition) do nothing
    returning 1)
select (select count(*) from offsets_moved) + (select count(*) from offsets_new),
    set_config('synchronous_commit', ${_SYNC_PARAM}::text, true)"""
# One statement writes a batch's events, executions and offsets (three statements and a
# SET would be four round trips to the server per batch, each waited for).
# The sub-statements touch different tables and none reads another's rows, so running
# them on one snapshot changes nothing.
#
# The offsets are a compare-and-set: each partition's new offset is stored only if the
# stored one is not behind the offset the batch continues from ("since"; a partition
# with no row counts as 0). The result is the number of partitions stored, and fewer
# than the batch's means the store has lost a position the projector built on (a server
# crash that dropped acknowledged commits, an offset reset behind its back): the batch
# is rolled back and the projector re-reads the stored offsets and applies again from
# there, so nothing is ever skipped. A stored offset *ahead* of "since" is fine: every
# event below it was stored with it (rows and offsets commit together, and a crash
# loses a suffix of the commits, never a middle one), and the batch covers the rest.
# That is what lets two projectors share a group and a schema (an Engine's in-process
# one and `flowmonkey projector`): each applies what it reads (rows are idempotent by
# seq, so each one's listeners hear every event), and greatest() never moves the stored
# position back to the slower one's. The update and the insert see one snapshot: for a
# partition without a row the insert stores it; with one, the update checks it; a row
# another transaction inserts meanwhile makes the insert store nothing (a conflict).
#
# synchronous_commit is set for this transaction only ("off" by default, see
# PostgresProjection): with it off, a server crash can lose the last acknowledged
# commits, rows and offsets together, and the compare-and-set above is what notices.
