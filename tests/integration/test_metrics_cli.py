"""`flowmonkey projector --metrics-port` serves Prometheus metrics while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import httpx
import pytest

from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from tests.integration.projector_support import append_events, run_end, run_start
from tests.integration.test_cli_runtime import (  # noqa: F401 (a fixture)
    Launch,
    _env,
    _run,
    start_projector,
)

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_projector_serves_its_metrics_on_the_metrics_port(
    kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str],
    start_projector: Launch,  # noqa: F811
) -> None:
    dsn, schema = pg_schema
    env = _env(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap, FLOWMONKEY_TOPIC_PREFIX=kafka_prefix,
               FLOWMONKEY_POSTGRES_DSN=dsn, FLOWMONKEY_PARTITIONS="2")
    assert (await _run("topics", "create", env=env)).code == 0
    ids = [f"m{i}" for i in range(4)]
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}publisher") as log:
        await append_events(log, Topics(kafka_prefix).events,
                            [e for i in ids for e in [*run_start(i), *run_end(i)]])
    port = _free_port()
    projector = await start_projector(env, "--schema", schema, "--group",
                                      f"{kafka_prefix}projector", "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    text = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    async with httpx.AsyncClient(timeout=5) as client:
        # every event is applied once, and the counter says so
        while "flowmonkey_projector_events_applied_total 20.0" not in text:
            assert projector.process.returncode is None, projector.err
            assert loop.time() < deadline, f"no metrics with 20 events applied: {text[-2000:]}"
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                text = (await client.get(url)).text
            await asyncio.sleep(0.1)
    assert "flowmonkey_projector_batch_seconds_bucket" in text
    assert "process_cpu_seconds_total" in text
    assert any(f"metrics on http://127.0.0.1:{port}/metrics" in line for line in projector.out)
    assert await projector.stop() == 0, projector.err
