"""The topic prefix has one source, the log's: an Engine (and a ProjectorService) over
``KafkaLog(topic_prefix=P)`` uses P's topics and creates no ``flowmonkey.*`` one, and
one given a different ``topic_prefix`` of its own is refused at construction."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from flowmonkey import Engine, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.service import ProjectorService

pytestmark = pytest.mark.integration

SUFFIXES = ("commands", "events", "flows", "dead-letter")


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


FLOW = {
    "id": "prefix-flow", "version": "1", "initialStepId": "a",
    "steps": {"a": {"type": "noop", "outputKey": "a", "transitions": {"onSuccess": None}}},
}


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="prefix-test-admin")
    await admin.start()
    try:
        return {str(t) for t in await admin.list_topics()}
    finally:
        await admin.close()


async def test_an_engine_uses_the_topics_of_its_logs_prefix(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    default_before = {t for t in await _topics(kafka_bootstrap) if t.startswith("flowmonkey.")}
    log = KafkaLog(kafka_bootstrap, topic_prefix=kafka_prefix, partitions=2,
                   client_id=f"{kafka_prefix}client")
    async with Engine(flows=[FLOW], handlers=[noop], log=log,
                      processor_group=f"{kafka_prefix}processor") as engine:
        assert engine.topics.prefix == kafka_prefix
        created = await engine.create("prefix-flow", {})
        done = await engine.wait(created.execution.id, timeout_s=60)
        assert done.status is ExecutionStatus.COMPLETED
        # the execution's events went to P's events topic
        events = [r for p in range(engine.partitions)
                  for r in await log.read(f"{kafka_prefix}.events", p, 0)]
        assert any(r.key == created.execution.id.encode() for r in events)
    after = await _topics(kafka_bootstrap)
    assert {f"{kafka_prefix}.{s}" for s in SUFFIXES} <= after
    default_after = {t for t in after if t.startswith("flowmonkey.")}
    assert default_after - default_before == set(), "the engine created default topics"


async def test_an_engine_given_another_prefix_than_its_logs_is_refused(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    before = await _topics(kafka_bootstrap)
    log = KafkaLog(kafka_bootstrap, topic_prefix=kafka_prefix, client_id=f"{kafka_prefix}c")
    with pytest.raises(ValueError, match="differs from the topic prefix") as refused:
        Engine(flows=[FLOW], handlers=[noop], log=log, topic_prefix="orders")
    message = str(refused.value)
    assert "Engine(topic_prefix='orders')" in message
    assert f"KafkaLog(topic_prefix={kafka_prefix!r})" in message
    assert "KafkaLog(..., topic_prefix='orders')" in message
    with pytest.raises(ValueError, match="ProjectorService"):
        ProjectorService(log, MemoryProjection(), topic_prefix="orders")
    # the same prefix twice is no conflict
    assert Engine(log=log, topic_prefix=kafka_prefix).topics.prefix == kafka_prefix
    assert ProjectorService(log, MemoryProjection()).topic == f"{kafka_prefix}.events"
    new = await _topics(kafka_bootstrap) - before
    assert not any(t.startswith(("orders.", "flowmonkey.")) for t in new)
