"""The integration services are the real thing: PostgreSQL 15 and a Kafka broker
with working transactions."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_postgres_is_a_real_postgresql_15(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    conn = await asyncpg.connect(dsn)
    try:
        version: str = await conn.fetchval("select version()")
        assert version.startswith("PostgreSQL 15"), version

        await conn.execute(f'create table "{schema}".items (id int primary key, body jsonb)')
        await conn.execute(f'insert into "{schema}".items values (1, $1::jsonb)', '{"a": 1}')
        assert await conn.fetchval(f"select body->>'a' from \"{schema}\".items") == "1"
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_kafka_transactions_are_real(kafka_bootstrap: str, kafka_prefix: str) -> None:
    topic = f"{kafka_prefix}smoke"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"{kafka_prefix}tx",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1", key=b"k")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-2", key=b"k")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < 2:
                batches = await consumer.getmany(timeout_ms=1000)
                seen.extend(msg.value for msgs in batches.values() for msg in msgs)
        # whatever else is already fetchable must not include the aborted record
        batches = await consumer.getmany(timeout_ms=500)
        seen.extend(msg.value for msgs in batches.values() for msg in msgs)
    finally:
        await consumer.stop()

    assert seen == [b"committed-1", b"committed-2"]
