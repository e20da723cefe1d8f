"""A PostgreSQL crash loses an idle projector's last batches (issue 10, build item 1).

The projector applied a burst of events and has nothing left to do. PostgreSQL then
crashes and loses the last batch it had acknowledged (``synchronous_commit`` off: the
commit was only in the WAL buffers), and starts again. No event comes after it, so no
batch would ever be refused by the offsets check: the projector must notice by itself
(it compares the stored offsets with the ones it wrote every few seconds, and at once
after its connection pool reconnected) and apply the lost batch again, or the
projection stays behind the log for good while the projector says it is caught up.

The loss is made certain, not left to timing: the WAL is flushed (``checkpoint``),
the WAL writer is frozen (SIGSTOP) before the last batch, so nothing writes that
batch's commit from shared memory, then killed (a server process crash) and the
server stopped with ``pg_ctl stop -m immediate`` and started again. The server is
this module's own (never the session's shared one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from flowmonkey.log.base import Log
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.projector import VERIFY_EVERY_S, Projector
from flowmonkey.projections.service import ProjectorService
from flowmonkey.testing.services_postgres import PostgresServer
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
GROUP = "idle-crash"
RUNS = [f"r{i}" for i in range(8)]
RECOVERY_S = 15.0
"""How long an idle projector may take to apply the lost batch again (it checks every
VERIFY_EVERY_S, 2 s)."""


@pytest.fixture(scope="module")
def crashable_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module alone. Nothing but the WAL writer (frozen
    by the test) may write the WAL buffers of an idle server: no autovacuum, no
    background writer flushing pages (which flushes the WAL first)."""
    server = PostgresServer(settings={"wal_writer_delay": "10s", "autovacuum": "off",
                                      "bgwriter_lru_maxpages": "0"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def _projecting(kind: str, dsn: str, schema: str, request: pytest.FixtureRequest,
                      tmp_path: Path, verify_every_s: float = VERIFY_EVERY_S
                      ) -> AsyncIterator[tuple[Log, str, PostgresProjection]]:
    """A running projector of ``kind`` into ``schema`` (checking its stored offsets
    every ``verify_every_s``); yields a log to publish to, the events topic and the
    projection."""
    projection = PostgresProjection(dsn, schema, pool_max=2)
    if kind == "embedded":
        prefix = "fm-idle-"
        service = ProjectorService(EmbeddedLog(path=tmp_path, partitions=PARTITIONS,
                                               topic_prefix=prefix),
                                   projection, group=GROUP,
                                   batch_size=7, verify_every_s=verify_every_s)
        await service.start()
        try:
            yield service.log, Topics(prefix).events, projection
        finally:
            await service.stop()
        return
    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    prefix = request.getfixturevalue("kafka_prefix")
    topics = Topics(prefix)
    async with KafkaLog(bootstrap, client_id=f"{prefix}publisher") as publisher:
        await publisher.create_topics(topics.specs(PARTITIONS))
        if kind == "kafka-group":
            service = ProjectorService(KafkaLog(bootstrap, client_id=f"{prefix}proj",
                                                topic_prefix=prefix),
                                       projection, group=GROUP,
                                       batch_size=7, verify_every_s=verify_every_s)
            await service.start()
            try:
                yield publisher, topics.events, projection
            finally:
                await service.stop()
            return
        # the engine's in-process projector on Kafka (one tail over every partition)
        async with KafkaLog(bootstrap, client_id=f"{prefix}tail") as log:
            await projection.start()
            projector = Projector(log, topics.events, PARTITIONS, projection, group=GROUP,
                                  batch_size=7, verify_every_s=verify_every_s)
            await projector.start()
            try:
                yield publisher, topics.events, projection
            finally:
                await projector.stop()
                await projection.close()


async def _freeze_wal_writer(dsn: str) -> int:
    """Write every WAL record so far (a checkpoint), then stop the WAL writer: the
    commits from now on stay in shared memory. Its pid."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("checkpoint")
        pid: int = await conn.fetchval(
            "select pid from pg_stat_activity where backend_type = 'walwriter'")
    finally:
        await conn.close()
    os.kill(pid, signal.SIGSTOP)
    return pid


def _crash(server: PostgresServer, wal_writer: int) -> None:
    """Kill the frozen WAL writer (the WAL buffers die with the server's shared
    memory), stop the server as a crash does, and start it again."""
    os.kill(wal_writer, signal.SIGKILL)
    server.crash()
    server.restart()


async def _stored_are(dsn: str, schema: str, ends: dict[int, int]) -> bool:
    try:
        return await stored_offsets(dsn, schema) == ends
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


async def _lose_the_last_batch(server: PostgresServer, schema: str, log: Log,
                               topic: str) -> dict[int, int]:
    """Project a burst of events, then one more batch per partition that the crash
    loses; the offsets after the log's last records."""
    dsn = server.dsn
    await publish(log, topic, [run_start(eid) for eid in RUNS], PARTITIONS)
    ends = await after_last_records(log, topic, PARTITIONS)
    await until(lambda: _stored_are(dsn, schema, ends), "the burst projected")
    wal_writer = await _freeze_wal_writer(dsn)
    # the last batches: acknowledged (stored offsets at the end) but never written
    await publish(log, topic, [run_end(eid) for eid in RUNS[:PARTITIONS]], PARTITIONS)
    ends = await after_last_records(log, topic, PARTITIONS)
    await until(lambda: _stored_are(dsn, schema, ends), "the last batches projected")
    await asyncio.to_thread(_crash, server, wal_writer)
    return ends


async def _all_projected(dsn: str, schema: str, log: Log, topic: str) -> bool:
    try:
        return await projected_events(dsn, schema) == await log_events(log, topic,
                                                                         PARTITIONS)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


def _noticed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "as last written" in r.getMessage()]


@pytest.mark.parametrize("kind", ["kafka-group", "kafka-tail", "embedded"])
async def test_an_idle_projector_applies_again_the_batch_a_crash_lost(
    kind: str, crashable_postgres: PostgresServer, request: pytest.FixtureRequest,
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowmonkey.projector")
    dsn, schema = crashable_postgres.dsn, f"idle_{kind.replace('-', '_')}"
    async with _projecting(kind, dsn, schema, request, tmp_path) as (log, topic, _):
        # given an idle projector whose last acknowledged batch a crash lost
        await _lose_the_last_batch(crashable_postgres, schema, log, topic)
        # when no event comes after the restart
        # then within seconds every event of the topic is in fm_events again
        await until(lambda: _all_projected(dsn, schema, log, topic),
                    "the lost batch applied again with no new event", timeout_s=RECOVERY_S)
        assert _noticed(caplog), "the crash lost nothing: the test proves nothing"
        # and every execution equals its replay from the log (replay --verify-all)
        report = await verify(dsn, schema, log, topic)
        assert report.ok, report.to_json()
        assert report.equal == len(RUNS)


async def test_a_reconnect_makes_an_idle_projector_check_its_offsets_at_once(
    crashable_postgres: PostgresServer, request: pytest.FixtureRequest, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    # periodic checks an hour apart: only the reconnect can make it look
    caplog.set_level(logging.WARNING, logger="flowmonkey.projector")
    dsn, schema = crashable_postgres.dsn, "idle_reconnect"
    async with _projecting("embedded", dsn, schema, request, tmp_path,
                           verify_every_s=3600) as (log, topic, projection):
        await _lose_the_last_batch(crashable_postgres, schema, log, topic)
        # when anything reads through the projection's pool (an engine's get), the pool
        # replaces its broken connection
        await until(lambda: _read(projection), "a read through the projection")
        # then the projector checks the stored offsets and applies the lost batch again
        await until(lambda: _all_projected(dsn, schema, log, topic),
                    "the lost batch applied again after the reconnect", timeout_s=10)
        assert _noticed(caplog)
        report = await verify(dsn, schema, log, topic)
        assert report.ok, report.to_json()


async def _read(projection: PostgresProjection) -> bool:
    try:
        await projection.get(RUNS[0])
    except Exception:  # the pool's first use of a connection the restart broke
        return False
    return True
