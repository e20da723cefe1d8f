"""Jobs on Kafka and PostgreSQL: the records the projector writes into ``fm_jobs``
while jobs run (claims, progress, checkpoints, a lapsed lease, completion, failure,
cancellation) equal what a rebuild from the log gives, and what the memory
projection folds from the same log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from flowmonkey import Engine, HandlerParams, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.model.job import JobRecord, JobStatus
from flowmonkey.projections.base import Projection
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.postgres import PostgresProjection
from flowmonkey.projections.projector import Projector
from flowmonkey.projections.rebuild import rebuild
from tests.behaviour.flows import flow, step
from tests.behaviour.job_commands import JobCommands

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 2


@handler("export", stateful=True, heartbeat_ms=1_000)
async def export(p: HandlerParams) -> StepResult:
    raise AssertionError("a worker runs it")


FLOW = flow("exports", step("x", "export", output_key="exported"))


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 60) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (found := await check()):
        assert loop.time() < deadline, f"{what} did not happen within {timeout_s}s"
        await asyncio.sleep(0.05)
    return found


async def all_jobs(projection: Projection) -> list[JobRecord]:
    found: list[JobRecord] = []
    cursor: str | None = None
    while True:
        page = await projection.list_jobs(limit=2, cursor=cursor)
        found += page.items
        if (cursor := page.next_cursor) is None:
            return found


async def test_the_projected_jobs_equal_a_rebuild_from_the_log(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema

    def kafka(role: str) -> KafkaLog:
        return KafkaLog(kafka_bootstrap, topic_prefix=kafka_prefix, partitions=PARTITIONS,
                        client_id=f"{kafka_prefix}{role}")

    projection = PostgresProjection(dsn, schema)
    engine = Engine(flows=[FLOW], handlers=[export], log=kafka("engine"),
                    projection=projection, processor_group=f"{kafka_prefix}processor",
                    workers=0)
    async with engine:
        jobs = JobCommands(engine)
        ids = [(await engine.create("exports", {"n": i})).execution.id for i in range(4)]
        offered = [await jobs.pending(e) for e in ids]
        # 0: progress, checkpoint, completed
        first = await jobs.claim(ids[0], offered[0]["job_id"], "w1")
        await jobs.write(n.CMD_JOB_PROGRESS, first, percent=50, message="half")
        await jobs.write(n.CMD_JOB_CHECKPOINT, first, data={"next": 5})
        await jobs.write(n.CMD_JOB_COMPLETE, first, output={"file": "0.csv"})
        # 1: the lease lapses (3 heartbeats of 1 s), another worker claims it and fails
        lapsing = await jobs.claim(ids[1], offered[1]["job_id"], "w1")

        async def offered_again() -> bool:
            job = await projection.get_job(lapsing["job_id"])
            return job is not None and job.status == JobStatus.PENDING and \
                job.lease_expiries == 1

        await until(offered_again, "the lease's expiry")
        second = await jobs.claim(ids[1], offered[1]["job_id"], "w2")
        await jobs.write(n.CMD_JOB_FAIL, second, error={"code": "BROKE", "message": "no"})
        # 2: cancelled with its execution while claimed; 3: left pending
        await jobs.claim(ids[2], offered[2]["job_id"], "w2")
        await engine.cancel(ids[2], reason="not needed")

        expected = {offered[0]["job_id"]: JobStatus.COMPLETED,
                    offered[1]["job_id"]: JobStatus.FAILED,
                    offered[2]["job_id"]: JobStatus.CANCELLED,
                    offered[3]["job_id"]: JobStatus.PENDING}

        async def projected() -> list[JobRecord] | None:
            found = await all_jobs(projection)
            return found if {j.job_id: j.status for j in found} == expected else None

        live = await until(projected, "every job's end projected")
    by_id = {j.job_id: j for j in live}
    done, failed = by_id[offered[0]["job_id"]], by_id[offered[1]["job_id"]]
    assert (done.output, done.checkpoint_data, done.progress_message) == (
        {"file": "0.csv"}, {"next": 5}, "half")
    assert (failed.claims, failed.lease_expiries, failed.epoch, failed.worker_id) == (
        2, 1, 2, "w2")
    assert failed.error == {"code": "BROKE", "message": "no"}

    # a rebuild from the log into a fresh schema gives the same records
    into = f"t_rebuilt_{uuid.uuid4().hex[:12]}"
    log = kafka("rebuild")
    await log.start()
    try:
        result = await rebuild(log, dsn, engine.topics.events, current=schema, into=into,
                               group=f"{kafka_prefix}rebuild")
        assert result.counts["fm_jobs"] == 4
        rebuilt = PostgresProjection(dsn, into)
        await rebuilt.start()
        try:
            assert await all_jobs(rebuilt) == live
            for job in live:
                assert await rebuilt.get_job(job.job_id) == job
        finally:
            await rebuilt.close()

        # and so does the memory projection, folding the same log
        memory = MemoryProjection()
        topic = engine.topics.events
        projector = Projector(log, topic, PARTITIONS, memory, group=f"{kafka_prefix}memory")
        await projector.start()
        try:
            for partition in range(PARTITIONS):
                end = await log.end_offset(topic, partition)
                assert await projector.wait_for_position(partition, end, 60)
        finally:
            await projector.stop()
        assert await all_jobs(memory) == live
    finally:
        await log.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'drop schema if exists "{into}" cascade')
        finally:
            await conn.close()
