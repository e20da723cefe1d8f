"""The projector service on real Kafka and Postgres.

* two instances in one consumer group split the events partitions between them and
  together project everything, each event exactly once, across the rebalance that
  the second one's arrival causes;
* when one leaves, the other takes its partitions over from the stored offsets;
* a record on the events topic that is not an event is skipped, its offset stored,
  and the partition keeps going;
* on the embedded log the service projects every partition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowmonkey.log.base import OutRecord
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.partitioner import partition_for
from flowmonkey.log.topics import Topics
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.service import ProjectorService
from tests.integration.projector_support import (
    append_events,
    count,
    fetch,
    run_end,
    run_start,
    until,
)

pytestmark = pytest.mark.integration

PARTITIONS = 4


@pytest.fixture
async def kafka(kafka_bootstrap: str, kafka_prefix: str) -> AsyncIterator[KafkaLog]:
    """A log to publish with; the topics of ``kafka_prefix`` exist."""
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}publisher") as log:
        await log.create_topics(Topics(kafka_prefix).specs(PARTITIONS))
        yield log


def _service(bootstrap: str, prefix: str, pg_schema: tuple[str, str], name: str,
             batch_size: int = 1000) -> ProjectorService:
    dsn, schema = pg_schema
    return ProjectorService(KafkaLog(bootstrap, client_id=f"{prefix}{name}",
                                     topic_prefix=prefix),
                            PostgresProjection(dsn, schema, pool_max=2),
                            group=f"{prefix}projector",
                            batch_size=batch_size)


def _owned(service: ProjectorService) -> set[int]:
    return {p.partition for p in service.progress()}


async def _all_completed(service: ProjectorService, ids: list[str]) -> bool:
    for eid in ids:
        execution = await service.projection.get(eid)
        if execution is None or execution.status != ExecutionStatus.COMPLETED:
            return False
    return True


async def test_two_instances_split_the_partitions_and_together_project_everything_once(
    kafka_bootstrap: str, kafka_prefix: str, kafka: KafkaLog, pg_schema: tuple[str, str]
) -> None:
    dsn, schema = pg_schema
    events = Topics(kafka_prefix).events
    early, late = [f"a{i}" for i in range(20)], [f"b{i}" for i in range(20)]
    # small batches, so the first instance is mid-stream when the second one arrives
    first = _service(kafka_bootstrap, kafka_prefix, pg_schema, "one", batch_size=7)
    second = _service(kafka_bootstrap, kafka_prefix, pg_schema, "two", batch_size=7)
    await append_events(kafka, events, [e for eid in early for e in run_start(eid)])
    await first.start()
    try:
        await until(lambda: _owned(first) == set(range(PARTITIONS)),
                    "the first instance to own every partition")
        await second.start()
        try:
            # given two members, each owns some partitions and none is owned twice
            await until(lambda: bool(_owned(first)) and bool(_owned(second)),
                        "the partitions to be split between the instances")
            assert _owned(first) | _owned(second) == set(range(PARTITIONS))
            assert not _owned(first) & _owned(second)
            # when more events arrive, together they project all of them
            await append_events(kafka, events, [e for eid in early for e in run_end(eid)])
            await append_events(kafka, events,
                                [e for eid in late for e in [*run_start(eid), *run_end(eid)]])
            await until(lambda: _all_completed(first, early + late),
                        "every execution to be projected as completed")
            # then every event was applied exactly once, by one of them
            total = 5 * len(early + late)
            await until(lambda: first.applied_events + second.applied_events == total,
                        "the applied-event counters to settle")
            assert await count(dsn, schema, "fm_events") == total
            assert first.failure() is None
            assert second.failure() is None
        finally:
            await second.stop()
        # when the second leaves, the first takes its partitions back over ...
        await until(lambda: _owned(first) == set(range(PARTITIONS)),
                    "the first instance to own every partition again")
        more = [f"c{i}" for i in range(8)]
        await append_events(kafka, events,
                            [e for eid in more for e in [*run_start(eid), *run_end(eid)]])
        await until(lambda: _all_completed(first, more), "the last executions to be projected")
        # ... resuming at the offsets the second stored: still nothing twice
        assert await count(dsn, schema, "fm_events") == 5 * len(early + late + more)
        await until(lambda: first.applied_events + second.applied_events
                    == 5 * len(early + late + more),
                    "the applied-event counters to settle")
    finally:
        await first.stop()


async def test_a_record_that_is_not_an_event_is_skipped_and_the_partition_keeps_going(
    kafka_bootstrap: str, kafka_prefix: str, kafka: KafkaLog, pg_schema: tuple[str, str]
) -> None:
    dsn, schema = pg_schema
    events = Topics(kafka_prefix).events
    service = _service(kafka_bootstrap, kafka_prefix, pg_schema, "solo")
    await service.start()
    try:
        # given garbage in partition 0, between two executions' events
        await append_events(kafka, events, run_start("before"))
        await kafka.append([OutRecord(events, b"\x00 not json", partition=0),
                            OutRecord(events, b'{"type": "x"}', partition=0)])
        await kafka.append([OutRecord(events, b"", key=b"k", partition=0)])
        ids = [f"after{i}" for i in range(16)]
        assert any(partition_for(eid.encode(), PARTITIONS) == 0 for eid in ids)
        await append_events(kafka, events, [e for eid in ids for e in run_start(eid)])
        # then everything else is projected
        await until(lambda: _all_projected(service, ["before", *ids]),
                    "the events around the garbage to be projected")
        # and the garbage was counted as skipped, and its offsets stored
        assert sum(p.skipped_records for p in service.progress()) == 3
        last = (await kafka.end_offset(events, 0))
        stored = await fetch(dsn, schema, "select next_offset from fm_projection_offsets "
                             "where topic = $1 and partition = 0", events)
        assert len(stored) == 1
        assert stored[0]["next_offset"] <= last
        assert service.progress()[0].offset == stored[0]["next_offset"]
        assert service.failure() is None
    finally:
        await service.stop()


async def test_on_the_embedded_log_the_service_projects_every_partition(
    tmp_path: Path, pg_schema: tuple[str, str]
) -> None:
    dsn, schema = pg_schema
    ids = [f"e{i}" for i in range(10)]
    writer = EmbeddedLog(path=tmp_path, partitions=PARTITIONS)
    await writer.start()
    await writer.create_topics(Topics("fm").specs(PARTITIONS))
    await append_events(writer, Topics("fm").events,
                        [e for eid in ids for e in [*run_start(eid), *run_end(eid)]])
    await writer.close()  # one process owns a data directory at a time
    service = ProjectorService(EmbeddedLog(path=tmp_path, topic_prefix="fm"),
                               PostgresProjection(dsn, schema), group="embedded")
    await service.start()
    try:
        await until(lambda: _all_completed(service, ids), "every execution to be projected")
        assert [p.partition for p in service.progress()] == list(range(PARTITIONS))
        assert service.applied_events == 5 * len(ids)
    finally:
        await service.stop()


async def _all_projected(service: ProjectorService, ids: list[str]) -> bool:
    for eid in ids:
        execution = await service.projection.get(eid)
        if execution is None or execution.seq != 3:
            return False
    return True

