"""An offset stored past the end of the log is never followed silently (issue 10,
build item 1): the projector stops with a message that names the group, the
partition, both offsets and the repair, and applies nothing from there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.projector import OffsetPastEndError, Projector
from flowmonkey.projections.service import ProjectorService
from tests.faults.pg_projection_support import projected_events, publish
from tests.integration.projector_support import run_start, until

pytestmark = pytest.mark.integration

PARTITIONS = 2
GROUP = "past-end"


async def _store_offset(dsn: str, schema: str, topic: str, partition: int,
                        offset: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f'insert into "{schema}".fm_projection_offsets values ($1, $2, $3, $4)',
            GROUP, topic, partition, offset)
    finally:
        await conn.close()


@pytest.fixture
async def projection(pg_schema: tuple[str, str]) -> AsyncIterator[PostgresProjection]:
    dsn, schema = pg_schema
    projection = PostgresProjection(dsn, schema, pool_max=2)
    await projection.start()
    yield projection
    await projection.close()


async def test_a_projector_refuses_to_start_from_an_offset_past_the_log_end(
    projection: PostgresProjection, pg_schema: tuple[str, str], tmp_path: Path
) -> None:
    dsn, schema = pg_schema
    topic = Topics("fm").events
    async with EmbeddedLog(path=tmp_path, partitions=PARTITIONS) as log:
        await log.create_topics(Topics("fm").specs(PARTITIONS))
        await publish(log, topic, [run_start(f"e{i}") for i in range(4)], PARTITIONS)
        # given a stored offset past partition 1's end (6 records)
        await _store_offset(dsn, schema, topic, 1, 40)
        projector = Projector(log, topic, PARTITIONS, projection, group=GROUP)
        with pytest.raises(OffsetPastEndError) as caught:
            await projector.start()
    message = str(caught.value)
    assert "'past-end'" in message
    assert f"{topic}[1]" in message
    assert "is 40, past the end of the log's partition (6)" in message
    assert "flowmonkey rebuild" in message
    assert await projected_events(dsn, schema) == set()


async def test_the_projector_service_on_kafka_stops_on_an_offset_past_the_log_end(
    pg_schema: tuple[str, str], kafka_bootstrap: str, kafka_prefix: str
) -> None:
    dsn, schema = pg_schema
    topics = Topics(kafka_prefix)
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}pub") as publisher:
        await publisher.create_topics(topics.specs(PARTITIONS))
        await publish(publisher, topics.events, [run_start(f"e{i}") for i in range(4)],
                      PARTITIONS)
        service = ProjectorService(
            KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}proj", topic_prefix=kafka_prefix),
            PostgresProjection(dsn, schema, pool_max=2), group=GROUP)
        await service.projection.start()  # the tables, to store the bad offset in
        await _store_offset(dsn, schema, topics.events, 0, 500)
        await service.start()
        try:
            await until(lambda: service.failure() is not None, "the projector to stop",
                        timeout_s=30)
        finally:
            await service.stop()
    failure = service.failure()
    assert isinstance(failure, FlowMonkeyError)
    assert failure.code == "PROJECTION_OFFSET_PAST_END"
    assert f"{topics.events}[0] is 500, past the end" in str(failure)
