"""A topic trigger: start a flow for each JSON record of an external Kafka topic.

The consumer reads the topic in its own consumer group and, for each batch, appends
one ``trigger.fire`` command per record and the consumed offsets in ONE Kafka
transaction: a record starts exactly one execution, across crashes and restarts. A
record that is not JSON goes to the dead-letter topic with the reason.

Kafka only (the consumer is a Kafka consumer group): give a broker in
FLOWMONKEY_KAFKA_BOOTSTRAP. The test suite runs this example against its own broker.

Run: FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092 python examples/19_topic_trigger.py
In production the consumer is its own process: flowmonkey trigger-consumer --app MODULE
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.log import KafkaLog
from flowmonkey.log.base import TopicSpec
from flowmonkey.model.trigger import Trigger
from flowmonkey.processors.topic_triggers import TopicTriggers


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)


@handler("ship")
async def ship(params: HandlerParams) -> StepResult:
    return Result.success(f"shipped {params.context['sku']} x{params.context['qty']}")


SHIP = {"id": "ship", "version": "1.0.0", "initialStepId": "only",
        "steps": {"only": {"id": "only", "type": "ship", "outputKey": "out",
                           "transitions": {"onSuccess": None}}}}


async def main(bootstrap: str) -> None:
    run = uuid.uuid4().hex[:8]  # a fresh deployment each run: its own topics
    orders = f"example-orders-{run}"
    trigger = Trigger.model_validate({
        "id": "orders-in", "kind": "topic", "flowId": "ship",
        "topic": {"topic": orders},
        # the new execution's context, from the record: {"value", "key", "topic", ...}
        "context": {"type": "path", "path": "value"},
    })
    # the external topic, as the system that owns it would have made it
    async with KafkaLog(bootstrap, client_id="example-admin") as admin:
        await admin.create_topics([TopicSpec(orders, 2)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(orders, orjson.dumps({"sku": f"SKU-{i}", "qty": i + 1}))
        await producer.send_and_wait(orders, b"this is not json")
    finally:
        await producer.stop()

    log = KafkaLog(bootstrap, topic_prefix=f"example-{run}")
    async with Engine(flows=[SHIP], handlers=[ship], triggers=[trigger], log=log) as engine:
        consumers = TopicTriggers(log, engine.topics, [trigger])
        await consumers.start()
        try:
            shipped: list[str] = []
            for _ in range(600):
                page = await engine.list(flow_id="ship", status="completed")
                shipped = sorted(str(e.context["out"]) for e in page.items)
                if len(shipped) >= 3:
                    break
                await asyncio.sleep(0.05)
            dead = await log.read(engine.topics.dead_letter, 0, 0, 10)
        finally:
            await consumers.stop()
    for line in shipped:
        print(line)
    check(shipped == ["shipped SKU-0 x1", "shipped SKU-1 x2", "shipped SKU-2 x3"],
          f"one execution per JSON record, got {shipped}")
    check(len(dead) == 1 and dead[0].value == b"this is not json",
          "the record that is not JSON is in the dead-letter topic")
    reason = (dead[0].header("fm-error") or b"").decode()
    print(f"dead-lettered: {dead[0].value.decode()!r} ({reason})")
    print("OK")


if __name__ == "__main__":
    bootstrap = os.environ.get("FLOWMONKEY_KAFKA_BOOTSTRAP")
    if not bootstrap:
        print("this example needs Kafka: set FLOWMONKEY_KAFKA_BOOTSTRAP=host:port",
              file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(main(bootstrap))
