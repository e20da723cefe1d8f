"""A PostgreSQL projection that loses acknowledged commits (finding 4 of issue 10).

With ``synchronous_commit`` off, a PostgreSQL crash can drop the last commits the
projector was told had landed: their rows and their offsets together. Here that loss
is made deterministically, behind the projector's back: after it applied a first
half of every run (saved) and then the second half, the tables are put back to the
saved state. The projector's next batch continues from the offsets it wrote last,
which the store no longer has: it must notice, read the stored offsets again and
apply the lost events again, on each way of projecting (the projector service on
Kafka, the engine's projector on Kafka, the projector on the embedded log).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from flowmonkey.events.envelope import Event
from flowmonkey.log.base import Log
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.projector import OnBatch, Projector
from flowmonkey.projections.service import ProjectorService
from tests.faults.pg_projection_support import (
    after_last_records,
    log_events,
    projected_events,
    publish,
    stored_offsets,
    verify,
)
from tests.integration.projector_support import run_end, run_start, until

pytestmark = pytest.mark.integration

PARTITIONS = 2
GROUP = "lost-commit"
FIRST = [f"a{i}" for i in range(10)]
LATER = [f"b{i}" for i in range(4)]


@asynccontextmanager
async def _projecting(kind: str, pg_schema: tuple[str, str], kafka_bootstrap: str | None,
                      prefix: str, tmp_path: Path) -> AsyncIterator[tuple[Log, str]]:
    """A running projector of ``kind`` into ``pg_schema``; yields a log to publish to
    and the events topic."""
    dsn, schema = pg_schema
    topics = Topics(prefix)
    projection = PostgresProjection(dsn, schema, pool_max=2)
    if kind == "embedded":
        service = ProjectorService(EmbeddedLog(path=tmp_path, partitions=PARTITIONS,
                                               topic_prefix=prefix),
                                   projection, group=GROUP,
                                   batch_size=7)
        await service.start()
        try:
            yield service.log, topics.events
        finally:
            await service.stop()
        return
    assert kafka_bootstrap is not None
    async with KafkaLog(kafka_bootstrap, client_id=f"{prefix}publisher") as publisher:
        await publisher.create_topics(topics.specs(PARTITIONS))
        if kind == "kafka-group":
            service = ProjectorService(KafkaLog(kafka_bootstrap, client_id=f"{prefix}proj",
                                                topic_prefix=prefix),
                                       projection, group=GROUP,
                                       batch_size=7)
            await service.start()
            try:
                yield publisher, topics.events
            finally:
                await service.stop()
            return
        # the engine's in-process projector on Kafka (one tail over every partition)
        async with KafkaLog(kafka_bootstrap, client_id=f"{prefix}tail") as log:
            await projection.start()
            projector = Projector(log, topics.events, PARTITIONS, projection, group=GROUP,
                                  batch_size=7)
            await projector.start()
            try:
                yield publisher, topics.events
            finally:
                await projector.stop()
                await projection.close()


async def _lose_commits_since_saved(dsn: str, schema: str) -> None:
    """Put the projection back to the saved state, as a crash that lost every commit
    since would (rows and offsets together; these runs have no tokens or pipe rows)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'set search_path to "{schema}"')
        async with conn.transaction():
            await conn.execute("delete from fm_events where (execution_id, seq) not in "
                               "(select execution_id, seq from saved_events)")
            await conn.execute("delete from fm_executions")
            await conn.execute("insert into fm_executions select * from saved_executions")
            await conn.execute("delete from fm_projection_offsets")
            await conn.execute("insert into fm_projection_offsets "
                               "select * from saved_offsets")
    finally:
        await conn.close()


async def _save(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'set search_path to "{schema}"')
        for table in ("events", "executions", "projection_offsets"):
            name = "offsets" if table == "projection_offsets" else table
            await conn.execute(f"create table saved_{name} as select * from fm_{table}")
    finally:
        await conn.close()


async def _ends(log: Log, topic: str) -> dict[int, int]:
    return await after_last_records(log, topic, PARTITIONS)


@pytest.mark.parametrize("kind", ["kafka-group", "kafka-tail", "embedded"])
async def test_a_projector_applies_again_the_batches_a_database_crash_lost(
    kind: str, request: pytest.FixtureRequest, pg_schema: tuple[str, str],
    tmp_path: Path
) -> None:
    dsn, schema = pg_schema
    bootstrap = None if kind == "embedded" else request.getfixturevalue("kafka_bootstrap")
    prefix = "fm-lost-" if kind == "embedded" else request.getfixturevalue("kafka_prefix")
    async with _projecting(kind, pg_schema, bootstrap, prefix, tmp_path) as (log, topic):
        # given a projection that applied the first half of every run, saved here
        await publish(log, topic, [run_start(eid) for eid in FIRST], PARTITIONS)
        ends = await _ends(log, topic)
        await until(lambda: _stored_are(dsn, schema, ends), "the first halves projected")
        await _save(dsn, schema)
        # and then the second halves
        await publish(log, topic, [run_end(eid) for eid in FIRST], PARTITIONS)
        ends = await _ends(log, topic)
        await until(lambda: _stored_are(dsn, schema, ends), "the second halves projected")
        # when the database loses those last commits behind the projector's back
        await _lose_commits_since_saved(dsn, schema)
        assert len(await projected_events(dsn, schema)) == 3 * len(FIRST)
        # and new events arrive on every partition
        await publish(log, topic, [run_start(eid) for eid in LATER], PARTITIONS)
        ends = await _ends(log, topic)
        await until(lambda: _stored_are(dsn, schema, ends), "the new events projected",
                    timeout_s=20)
        # then the projector applied the lost events again: every event of the topic
        # is in fm_events, and every execution equals its replay from the log
        in_log = await log_events(log, topic, PARTITIONS)
        assert len(in_log) == 5 * len(FIRST) + 3 * len(LATER)
        missing = in_log - await projected_events(dsn, schema)
        assert not missing, f"{len(missing)} events of the topic are not in fm_events"
        report = await verify(dsn, schema, log, topic)
        assert report.ok, report.to_json()
        assert report.equal == len(FIRST) + len(LATER)


async def _stored_are(dsn: str, schema: str, ends: dict[int, int]) -> bool:
    return await stored_offsets(dsn, schema) == ends


async def test_two_projectors_sharing_a_group_each_apply_and_hear_every_event(
    pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    # an engine's in-process projector and `flowmonkey projector` may share a group and
    # a schema: the offsets check must not make either skip what the other stored
    dsn, schema = pg_schema
    topics = Topics("fm")
    heard: dict[str, list[str]] = {"one": [], "two": []}
    async with EmbeddedLog(path=tmp_path, partitions=PARTITIONS) as log:
        await log.create_topics(topics.specs(PARTITIONS))
        projections = [PostgresProjection(dsn, schema, pool_max=2) for _ in heard]
        projectors = []
        for name, projection in zip(heard, projections, strict=True):
            await projection.start()
            projector = Projector(log, topics.events, PARTITIONS, projection,
                                  on_batch=_collect(heard[name]), group=GROUP,
                                  batch_size=3)
            await projector.start()
            projectors.append(projector)
        try:
            for wave in range(4):
                await publish(log, topics.events,
                              [run_start(f"w{wave}-{i}") for i in range(6)], PARTITIONS)
            ends = await _ends(log, topics.events)
            await until(lambda: all(p.positions == [ends[0], ends[1]] for p in projectors),
                        "both projectors to reach the end")
            assert await stored_offsets(dsn, schema) == ends
        finally:
            for projector in projectors:
                await projector.stop()
            for projection in projections:
                await projection.close()
        in_log = await log_events(log, topics.events, PARTITIONS)
    assert await projected_events(dsn, schema) == in_log
    for name, events in heard.items():
        assert sorted(events) == sorted(e[2] for e in in_log), name


def _collect(into: list[str]) -> OnBatch:
    def on_batch(events: Sequence[Event], replayed: bool) -> None:
        into.extend(e.event_id for e in events)
    return on_batch
