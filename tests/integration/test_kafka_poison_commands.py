"""On Kafka too, a command the engine itself fails on is rejected alone (issue 10,
build 4): the consumer group's processor neither stops nor rebuilds the partition in
a loop, and the other commands go on."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import CommandRejected, Engine, Result, handler
from flowmonkey.events import names as n
from flowmonkey.events.codec import event_record
from flowmonkey.events.envelope import Event
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.kernel import decide as decide_module
from flowmonkey.log import OutRecord
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.processors import partition as partition_module

pytestmark = pytest.mark.integration

ENDED = {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}


@handler("echo")
async def echo(params: HandlerParams) -> StepResult:
    return Result.success(params.input)


def _flow(flow_id: str) -> dict[str, Any]:
    return {"id": flow_id, "version": "1", "initialStepId": "a",
            "steps": {"a": {"type": "echo", "input": {"type": "key", "key": "x"},
                            "outputKey": "a", "transitions": {"onSuccess": None}}}}


async def test_poisoned_commands_are_rejected_alone_on_kafka(
        kafka_bootstrap: str, kafka_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_start = decide_module._DECIDERS[n.CMD_START]

    def broken_start(tx: Any) -> Any:
        if tx.cmd.data.get("flow_id") == "poisoned":
            raise KeyError("a kernel bug")
        return real_start(tx)

    def encoder(topic: str, event: Event, partition: int | None = None, *,
                attach: bool = True) -> OutRecord:
        if event.type == n.STEP_COMPLETED and event.data.get("output") == "poison":
            raise TypeError("Recursion limit reached")
        return event_record(topic, event, partition, attach=attach)

    monkeypatch.setitem(decide_module._DECIDERS, n.CMD_START, broken_start)
    monkeypatch.setattr(partition_module, "event_record", encoder)
    log = KafkaLog(kafka_bootstrap, topic_prefix=kafka_prefix, partitions=2,
                   client_id=f"{kafka_prefix}client", exactly_once=True)
    async with Engine(flows=[_flow("fine"), _flow("poisoned")], handlers=[echo], log=log,
                      processor_group=f"{kafka_prefix}processor") as engine:
        with pytest.raises(CommandRejected) as refused:
            await engine.create("poisoned", {"x": 1})
        assert refused.value.code == n.REJECT_INTERNAL_ERROR

        bad_step = await engine.create("fine", {"x": "poison"})
        good = await engine.create("fine", {"x": "good"})

        failed = await engine.wait(bad_step.execution.id, timeout_s=60, until=ENDED)
        done = await engine.wait(good.execution.id, timeout_s=60, until=ENDED)
        assert failed.status == ExecutionStatus.FAILED
        assert failed.error is not None
        assert failed.error.code == n.REJECT_INTERNAL_ERROR
        assert "a" not in failed.context
        assert done.status == ExecutionStatus.COMPLETED
        assert done.context["a"] == "good"
        assert engine.processor_failure() is None
