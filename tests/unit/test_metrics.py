"""Prometheus metrics of an embedded engine (processors and projector), of the HTTP
API's ``/metrics``, and of the metrics server the commands start."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from flowmonkey import Engine, EngineOptions, HandlerParams, Result, StepResult, handler
from flowmonkey.api import ApiAuth, create_app
from flowmonkey.api.auth import ApiKey
from flowmonkey.errors import FlowMonkeyError
from flowmonkey.events import names as n
from flowmonkey.log.base import OutRecord
from flowmonkey.metrics import BulkHistogram, Metrics, serve_metrics
from flowmonkey.settings import Settings, SettingsError
from tests.behaviour.flows import flow, step
from tests.unit.api_support import eventually


@handler("ok")
async def ok(p: HandlerParams) -> StepResult:
    return Result.success({"fine": True})


@handler("fails")
async def fails(p: HandlerParams) -> StepResult:
    return Result.failure("NOPE", "this step fails")


@handler("raises")
async def raises(p: HandlerParams) -> StepResult:
    raise RuntimeError("boom")


@handler("hangs")
async def hangs(p: HandlerParams) -> StepResult:
    await asyncio.Event().wait()  # until the engine's step timeout cancels it
    raise AssertionError("unreachable")


FLOWS = [
    flow("two-ok", step("a", "ok", to="b"), step("b", "ok")),
    flow("fails", step("a", "fails")),
    flow("raises", step("a", "raises")),
    flow("hangs", step("a", "hangs")),
]
TENANT = "tenant-metrics-7"


def engine_with(metrics: Metrics) -> Engine:
    # a short default step timeout, so the hanging handler times out fast
    return Engine(flows=FLOWS, handlers=[ok, fails, raises, hangs],
                  options=EngineOptions(timeout_ms=50), metrics=metrics)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def settle(engine: Engine) -> None:
    await eventually(engine.settled, what="the engine to settle")


async def run_everything(engine: Engine) -> tuple[list[str], str]:
    """One execution of each flow to its end, then a resume refused; the ids and
    the refusal's code."""
    ids = []
    for flow_id in ("two-ok", "fails", "raises", "hangs"):
        created = await engine.create(flow_id, {"n": 1}, tenant_id=TENANT)
        ids.append(created.execution.id)
    for execution_id in ids:
        await engine.wait(execution_id, timeout_s=10)
    with pytest.raises(FlowMonkeyError) as refused:
        await engine.resume(ids[0], "no-such-token", tenant_id=TENANT)
    await settle(engine)
    return ids, refused.value.code


async def events_in_log(engine: Engine) -> int:
    return sum([await engine.log.end_offset(engine.topics.events, p)
                for p in range(engine.partitions)])


async def test_an_engine_counts_commands_events_handler_outcomes_and_projected_events(
) -> None:
    metrics = Metrics()
    async with engine_with(metrics) as engine:
        _, code = await run_everything(engine)
        events = await events_in_log(engine)

        assert value(metrics, "flowmonkey_processor_commands_decided_total",
                     type=n.CMD_START) == 4
        assert value(metrics, "flowmonkey_processor_commands_decided_total",
                     type=n.CMD_RESUME) == 1
        assert value(metrics, "flowmonkey_processor_commands_decided_total",
                     type=n.CMD_STEP_RESULT) == 5  # two steps, then one per other flow
        assert value(metrics, "flowmonkey_processor_commands_rejected_total", code=code) == 1
        assert value(metrics, "flowmonkey_processor_handler_runs_total", outcome="success") == 2
        assert value(metrics, "flowmonkey_processor_handler_runs_total", outcome="failure") == 1
        assert value(metrics, "flowmonkey_processor_handler_runs_total", outcome="raised") == 1
        assert value(metrics, "flowmonkey_processor_handler_runs_total", outcome="timeout") == 1
        assert value(metrics, "flowmonkey_processor_handler_seconds_count") == 5
        # the timed-out run lasted at least its 50 ms timeout
        assert value(metrics, "flowmonkey_processor_handler_seconds_sum") >= 0.05
        assert value(metrics, "flowmonkey_processor_events_appended_total") == events > 0
        assert value(metrics, "flowmonkey_projector_events_applied_total") == events
        assert value(metrics, "flowmonkey_processor_partitions_owned") == engine.partitions
        assert value(metrics, "flowmonkey_processor_recovery_seconds_count") == engine.partitions
        assert value(metrics, "flowmonkey_processor_dead_lettered_total") == 0
        decided = sum(value(metrics, "flowmonkey_processor_commands_decided_total", type=t)
                      for t in (n.CMD_START, n.CMD_RESUME, n.CMD_STEP_RESULT))
        assert value(metrics, "flowmonkey_processor_batch_size_sum") == decided
        assert 1 <= value(metrics, "flowmonkey_processor_batches_total") <= decided
        assert value(metrics, "flowmonkey_processor_append_seconds_count") >= 1
        assert value(metrics, "flowmonkey_projector_batches_total") >= 1
        assert value(metrics, "flowmonkey_projector_lag_seconds_count") >= 1
        offsets = sum(value(metrics, "flowmonkey_projector_next_offset", partition=str(p))
                      for p in range(engine.partitions))
        assert offsets == events
        for p in range(engine.partitions):
            assert value(metrics, "flowmonkey_processor_handlers_in_flight",
                         partition=str(p)) == 0
    # a stopped engine owns no partitions any more, nor reports their handlers
    assert value(metrics, "flowmonkey_processor_partitions_owned") == 0
    assert metrics.registry.get_sample_value(
        "flowmonkey_processor_handlers_in_flight", {"partition": "0"}) is None


async def test_a_garbage_command_record_is_counted_as_dead_lettered() -> None:
    metrics = Metrics()
    async with engine_with(metrics) as engine:
        await engine.log.append([OutRecord(engine.topics.commands, b"not json", key=b"k",
                                           partition=0)])
        await settle(engine)
        assert value(metrics, "flowmonkey_processor_dead_lettered_total") == 1
        assert value(metrics, "flowmonkey_processor_events_appended_total") == 0


async def test_two_engines_with_their_own_metrics_count_apart() -> None:
    first, second = Metrics(), Metrics()
    async with engine_with(first) as one, engine_with(second) as other:
        await one.wait((await one.create("two-ok")).execution.id, timeout_s=10)
        await settle(one)
        await settle(other)
    assert value(first, "flowmonkey_processor_handler_runs_total", outcome="success") == 2
    assert value(second, "flowmonkey_processor_handler_runs_total", outcome="success") == 0


async def test_get_metrics_needs_no_key_and_names_no_tenant_execution_or_raw_path() -> None:
    metrics = Metrics()
    key = "metrics-test-key-0123456789"
    engine = engine_with(metrics)
    async with engine:
        ids, _ = await run_everything(engine)
        app = create_app(engine, ApiAuth([ApiKey(key, TENANT)]))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            read = await client.get(f"/v1/executions/{ids[0]}",
                                    headers={"Authorization": f"Bearer {key}"})
            assert read.status_code == 200
            missing = await client.get("/v1/executions/unknown-id-42",
                                       headers={"Authorization": f"Bearer {key}"})
            assert missing.status_code == 404
            assert (await client.get(f"/nowhere/{ids[1]}")).status_code == 404
            scraped = await client.get("/metrics")  # no key
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    for name in ("flowmonkey_processor_commands_decided_total",
                 "flowmonkey_processor_events_appended_total",
                 "flowmonkey_processor_handler_runs_total",
                 "flowmonkey_processor_handler_seconds_bucket",
                 "flowmonkey_projector_events_applied_total",
                 "flowmonkey_api_requests_total"):
        assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), name
    route = "/v1/executions/{execution_id}"
    assert value(metrics, "flowmonkey_api_requests_total", method="GET", route=route,
                 status="200") == 1
    assert value(metrics, "flowmonkey_api_requests_total", method="GET", route=route,
                 status="404") == 1
    assert value(metrics, "flowmonkey_api_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert value(metrics, "flowmonkey_api_request_seconds_count", method="GET",
                 route=route) == 2
    for secret in (TENANT, key, "unknown-id-42", "/nowhere", *ids):
        assert secret not in text


def test_a_bulk_histogram_counts_into_cumulative_buckets() -> None:
    histogram = BulkHistogram("h_seconds", "test", [0.1, 1.0])
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(seconds)
    (family,) = histogram.collect()
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("h_seconds_bucket", "0.1")] == 2  # a bound holds what equals it
    assert samples[("h_seconds_bucket", "1.0")] == 3
    assert samples[("h_seconds_bucket", "+Inf")] == 4
    assert samples[("h_seconds_count", None)] == 4
    assert samples[("h_seconds_sum", None)] == pytest.approx(3.65)


def test_serve_metrics_answers_on_a_free_port_until_closed() -> None:
    metrics = Metrics()
    metrics.events_applied.inc(3)
    server = serve_metrics(metrics, 0)
    try:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert answer.status_code == 200
        assert "flowmonkey_projector_events_applied_total 3.0" in answer.text
    finally:
        server.close()


def test_the_metrics_port_comes_from_the_environment_and_is_checked() -> None:
    assert Settings.from_env({}).metrics_port is None
    assert Settings.from_env({"FLOWMONKEY_METRICS_PORT": " 9464 "}).metrics_port == 9464
    for bad in ("0", "65536", "http", "-1"):
        with pytest.raises(SettingsError, match="FLOWMONKEY_METRICS_PORT"):
            Settings.from_env({"FLOWMONKEY_METRICS_PORT": bad})
