"""The HTTP API as deployed: its engine runs no processors and projects into
PostgreSQL; a processor engine on the same Kafka topics answers its commands."""

from __future__ import annotations

import httpx
import pytest

from flowmonkey import Engine
from flowmonkey.api import ApiAuth, create_app
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.projections.postgres import PostgresProjection
from tests.unit.api_support import (
    APPROVE,
    GREET,
    ISO_UTC,
    KEY_A,
    KEY_B,
    KEYS,
    approval,
    bearer,
    greet,
    until_status,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 2


async def test_an_execution_created_over_http_completes_and_is_read_from_postgres(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema

    def kafka(role: str) -> KafkaLog:
        return KafkaLog(kafka_bootstrap, topic_prefix=kafka_prefix, partitions=PARTITIONS,
                        client_id=f"{kafka_prefix}{role}")

    processor = Engine(flows=[GREET, APPROVE], handlers=[greet, approval],
                       log=kafka("processor"),
                       processor_group=f"{kafka_prefix}processor", run_projector=False)
    api_engine = Engine(log=kafka("api"), projection=PostgresProjection(dsn, schema),
                        run_processors=False)
    async with processor, api_engine:
        # the API's engine knows no flows of its own: it reads them from the flows topic
        transport = httpx.ASGITransport(app=create_app(api_engine, ApiAuth(KEYS)))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            created = await client.post("/v1/executions", headers=bearer(KEY_A),
                                        json={"flowId": "greet", "context": {"name": "Kay"}},
                                        timeout=60)
            assert created.status_code == 201, created.text
            execution_id = created.json()["execution"]["id"]
            # the API applied the answering events itself: readable at once
            at_once = await client.get(f"/v1/executions/{execution_id}",
                                       headers=bearer(KEY_A))
            assert at_once.status_code == 200

            done = await until_status(client, execution_id, "completed", bearer(KEY_A),
                                      timeout_s=60)
            assert done["context"]["greeting"] == {"hello": "Kay"}
            events = await client.get(f"/v1/executions/{execution_id}/events",
                                      headers=bearer(KEY_A))
            assert events.json()["events"][-1]["type"] == "execution.completed"
            # read from PostgreSQL (microseconds): the API's one format all the same
            assert ISO_UTC.match(done["createdAt"])
            assert ISO_UTC.match(done["updatedAt"])
            first = events.json()["events"][0]
            assert ISO_UTC.match(first["timestamp"])
            assert first["data"]["flowId"] == "greet"
            hidden = await client.get(f"/v1/executions/{execution_id}",
                                      headers=bearer(KEY_B))
            assert hidden.status_code == 404
