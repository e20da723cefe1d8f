"""The projector on Kafka and Postgres: offsets stored with the rows.

* a restarted projector starts each partition at the offset stored with its last
  batch and applies only what came after: nothing twice, nothing missed;
* its state equals a replay of the whole log from offset 0;
* progress reports the applied offset and the lag of each partition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.log.base import TopicSpec
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.projector import Projector
from tests.contract.projection_contract import T0
from tests.integration.projector_support import (
    append_events,
    count,
    fetch,
    run_end,
    run_start,
    snapshot,
    until,
)

pytestmark = pytest.mark.integration

PARTITIONS = 3
GROUP = "projector-test"
IDS = [f"e{i}" for i in range(12)]


@pytest.fixture
async def kafka(kafka_bootstrap: str, kafka_prefix: str) -> AsyncIterator[KafkaLog]:
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}client") as log:
        await log.create_topics([TopicSpec(f"{kafka_prefix}events", PARTITIONS)])
        yield log


async def after_last_records(log: KafkaLog, topic: str) -> dict[int, int]:
    """Per partition with records: the offset after its last record."""
    ends: dict[int, int] = {}
    for partition in range(PARTITIONS):
        offset = 0
        while records := await log.read(topic, partition, offset, 1000):
            offset = ends[partition] = records[-1].offset + 1
    return ends


async def _project(log: KafkaLog, topic: str, projection: PostgresProjection | MemoryProjection,
                   now_ms: int | None = None) -> Projector:
    """A started projector, run until it has applied everything in the log."""
    projector = Projector(log, topic, PARTITIONS, projection, group=GROUP,
                          now_ms=None if now_ms is None else (lambda: now_ms))
    await projector.start()
    await until(projector.caught_up, "the projector to catch up")
    return projector


async def test_a_restarted_projector_resumes_at_the_stored_offsets_and_applies_nothing_twice(
    kafka: KafkaLog, kafka_prefix: str, pg_schema: tuple[str, str]
) -> None:
    dsn, schema = pg_schema
    topic = f"{kafka_prefix}events"
    await append_events(kafka, topic, [e for eid in IDS for e in run_start(eid)])

    # given a projector that projected the first half of every run and stopped
    first = PostgresProjection(dsn, schema, pool_max=2)
    await first.start()
    projector = await _project(kafka, topic, first)
    await projector.stop()
    await first.close()
    assert projector.applied_events == 3 * len(IDS)
    stored = {r["partition"]: r["next_offset"] for r in await fetch(
        dsn, schema, "select partition, next_offset from fm_projection_offsets "
        "where group_id = $1 and topic = $2", GROUP, topic)}
    # the offset after each partition's last record was stored with its last batch
    assert stored == await after_last_records(kafka, topic)

    # when the runs end while it is down, and a new projector starts
    await append_events(kafka, topic, [e for eid in IDS for e in run_end(eid)])
    second = PostgresProjection(dsn, schema, pool_max=2)
    await second.start()
    try:
        resumed = Projector(kafka, topic, PARTITIONS, second, group=GROUP)
        await resumed.start()
        # then it starts where the first stopped ...
        assert resumed.positions == [stored.get(p, 0) for p in range(PARTITIONS)]
        await until(resumed.caught_up, "the resumed projector to catch up")
        await resumed.stop()
        # ... and applies exactly the events that came after
        assert resumed.applied_events == 2 * len(IDS)
        assert await count(dsn, schema, "fm_events") == 5 * len(IDS)
        for eid in IDS:
            execution = await second.get(eid)
            assert execution is not None
            assert (execution.status, execution.seq) == (ExecutionStatus.COMPLETED, 5)

        # and its state is the state of a replay of the whole log
        replayed = MemoryProjection()
        replay = await _project(kafka, topic, replayed)
        await replay.stop()
        assert replay.applied_events == 5 * len(IDS)
        assert await snapshot(second, IDS) == await snapshot(replayed, IDS)
    finally:
        await second.close()


async def test_a_projector_with_nothing_new_applies_nothing(
    kafka: KafkaLog, kafka_prefix: str, pg_schema: tuple[str, str]
) -> None:
    dsn, schema = pg_schema
    topic = f"{kafka_prefix}events"
    await append_events(kafka, topic, [e for eid in IDS for e in run_start(eid)])
    projection = PostgresProjection(dsn, schema, pool_max=2)
    await projection.start()
    try:
        await (await _project(kafka, topic, projection)).stop()
        again = await _project(kafka, topic, projection)
        await again.stop()
        assert again.applied_events == 0
        assert await count(dsn, schema, "fm_events") == 3 * len(IDS)
    finally:
        await projection.close()


async def test_progress_reports_each_partitions_offset_and_lag(
    kafka: KafkaLog, kafka_prefix: str, pg_schema: tuple[str, str]
) -> None:
    dsn, schema = pg_schema
    topic = f"{kafka_prefix}events"
    await append_events(kafka, topic, [e for eid in IDS for e in run_start(eid)])
    projection = PostgresProjection(dsn, schema, pool_max=2)
    await projection.start()
    try:
        # the events' timestamps are T0 + seq; "now" is a minute after T0
        projector = await _project(kafka, topic, projection, now_ms=T0 + 60_000)
        await projector.stop()
    finally:
        await projection.close()
    progress = projector.progress()
    assert [p.partition for p in progress] == list(range(PARTITIONS))
    assert [p.offset for p in progress] == projector.positions
    assert sum(p.applied_events for p in progress) == 3 * len(IDS)
    for p in progress:
        if p.applied_events:
            # every run's last event (seq 3) is the last applied in its partition
            assert (p.last_event_ms, p.lag_ms) == (T0 + 3, 60_000 - 3)


async def test_a_projector_following_waves_of_appends_applies_each_event_once(
    kafka: KafkaLog, kafka_prefix: str, pg_schema: tuple[str, str]
) -> None:
    # Batches cut wherever a fetch ends, across several partitions at once: none may
    # lose, repeat or reorder an event, nor store an offset ahead of its rows.
    dsn, schema = pg_schema
    topic = f"{kafka_prefix}events"
    ids = [f"w{i}" for i in range(60)]
    projection = PostgresProjection(dsn, schema, pool_max=4)
    await projection.start()
    announced: list[str] = []
    try:
        projector = Projector(kafka, topic, PARTITIONS, projection, group=GROUP,
                              on_batch=lambda events, _: announced.extend(
                                  f"{e.execution_id}:{e.seq}" for e in events))
        await projector.start()
        # when runs start and end in waves while it follows the topic
        for wave in range(0, len(ids), 10):
            await append_events(kafka, topic, [e for eid in ids[wave:wave + 10]
                                               for e in run_start(eid)])
            await append_events(kafka, topic, [e for eid in ids[wave:wave + 10]
                                               for e in run_end(eid)])
        await until(projector.caught_up, "the projector to catch up")
        await projector.stop()

        # then every event was applied and announced once, and the offsets stored are
        # the ends of the partitions
        assert projector.applied_events == 5 * len(ids)
        assert sorted(announced) == sorted(f"{eid}:{s}" for eid in ids for s in range(1, 6))
        assert await count(dsn, schema, "fm_events") == 5 * len(ids)
        stored = {r["partition"]: r["next_offset"] for r in await fetch(
            dsn, schema, "select partition, next_offset from fm_projection_offsets "
            "where group_id = $1 and topic = $2", GROUP, topic)}
        assert stored == await after_last_records(kafka, topic)
        replayed = MemoryProjection()
        replay = await _project(kafka, topic, replayed)
        await replay.stop()
        assert await snapshot(projection, ids) == await snapshot(replayed, ids)
    finally:
        await projection.close()
