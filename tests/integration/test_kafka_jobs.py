"""Jobs on a real Kafka broker: the job views go to the jobs topic in the processors'
transactions, and workers' commands (published by hand here) drive the job."""

from __future__ import annotations

import asyncio

import pytest

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import JOBS_CONFIGS
from flowmonkey.model.execution import ExecutionStatus
from tests.behaviour.job_commands import JobCommands

pytestmark = pytest.mark.integration


@handler("export", stateful=True)
async def export(p: HandlerParams) -> StepResult:
    return Result.success()


FLOW = {"id": "jobs", "version": "1", "initialStepId": "x",
        "steps": {"x": {"type": "export", "outputKey": "exported",
                        "transitions": {"onSuccess": None}}}}


async def test_a_job_is_offered_raced_for_and_completed_on_kafka(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    log = KafkaLog(kafka_bootstrap, topic_prefix=kafka_prefix, partitions=2,
                   client_id=f"{kafka_prefix}client")
    async with Engine(flows=[FLOW], handlers=[export], log=log, workers=0,
                      processor_group=f"{kafka_prefix}processor") as engine:
        facts = (await log.describe_topics([engine.topics.jobs]))[engine.topics.jobs]
        assert facts is not None
        assert facts.partitions == 2
        assert {k: facts.config(k) for k in JOBS_CONFIGS} == dict(JOBS_CONFIGS)

        jobs = JobCommands(engine)
        created = await engine.create("jobs", {"rows": 2})
        execution_id = created.execution.id
        offered = await jobs.pending(execution_id)
        assert offered["input"] == {"rows": 2}
        first, second = await asyncio.gather(*(
            jobs.send(n.CMD_JOB_CLAIM, execution_id, {"job_id": offered["job_id"],
                                                      "worker_id": worker})
            for worker in ("w1", "w2")))
        views = [await jobs.answer(c) for c in (first, second)]
        assert sorted(v["answer"]["accepted"] for v in views) == [False, True]
        won = next(v for v in views if v["answer"]["accepted"])
        done = await jobs.write(n.CMD_JOB_COMPLETE, won, output={"file": "x.csv"})
        assert done["status"] == "completed"

        final = await engine.wait(execution_id, until=[ExecutionStatus.COMPLETED])
        assert final.context == {"rows": 2, "exported": {"file": "x.csv"}}
