"""The topic prefix has one source, the log's, on the embedded log too: an Engine over
``EmbeddedLog(topic_prefix=P)`` uses P's topics, an Engine without a log gives its
``topic_prefix`` to the embedded log it makes, a different prefix than the log's is
refused, and the CLI's settings give theirs to the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmonkey import Engine, Result, handler
from flowmonkey.errors import LogError
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.service import ProjectorService
from flowmonkey.settings import Settings


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


FLOW = {
    "id": "prefix-flow", "version": "1", "initialStepId": "a",
    "steps": {"a": {"type": "noop", "outputKey": "a", "transitions": {"onSuccess": None}}},
}


async def test_an_engine_uses_the_topics_of_its_embedded_logs_prefix() -> None:
    log = EmbeddedLog(topic_prefix="orders")
    async with Engine(flows=[FLOW], handlers=[noop], log=log) as engine:
        created = await engine.create("prefix-flow", {})
        done = await engine.wait(created.execution.id, timeout_s=10)
        assert done.status is ExecutionStatus.COMPLETED
        assert await log.partitions_for("orders.events") == 4
        events = [r for p in range(engine.partitions)
                  for r in await log.read("orders.events", p, 0)]
        assert any(r.key == created.execution.id.encode() for r in events)
        with pytest.raises(LogError):
            await log.partitions_for("flowmonkey.commands")


async def test_an_engine_without_a_log_gives_its_prefix_to_the_embedded_log() -> None:
    engine = Engine(flows=[FLOW], handlers=[noop], topic_prefix="shop")
    assert engine.log.topic_prefix == "shop"
    assert engine.topics.events == "shop.events"
    assert Engine().topics.events == "flowmonkey.events"


def test_a_prefix_other_than_the_logs_is_refused_with_both_values() -> None:
    with pytest.raises(ValueError, match="differs from the topic prefix") as refused:
        Engine(log=EmbeddedLog(), topic_prefix="orders")
    message = str(refused.value)
    assert "Engine(topic_prefix='orders')" in message
    assert "EmbeddedLog(topic_prefix='flowmonkey')" in message
    assert "EmbeddedLog(..., topic_prefix='orders')" in message
    with pytest.raises(ValueError, match=r"ProjectorService\(topic_prefix='x'\)"):
        ProjectorService(EmbeddedLog(topic_prefix="y"), MemoryProjection(), topic_prefix="x")


@pytest.mark.parametrize("kafka", [None, "127.0.0.1:9092"])
def test_the_settings_give_their_prefix_to_the_log(kafka: str | None, tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap=kafka, topic_prefix="shop.prod", data_dir=tmp_path)
    log = settings.make_log()
    assert log.topic_prefix == "shop.prod"
    assert Engine(log=log).topics.commands == "shop.prod.commands"
