"""The explorer's health page: status, each partition's projection progress against
the log's end, the exported counts, and its live partial."""

from __future__ import annotations

import re

from flowmonkey import Engine
from flowmonkey.api.ui.pages_health import lag_summary, samples
from flowmonkey.metrics import Metrics
from tests.unit.api_support import APPROVE, GREET, approval, bearer, greet, until_status
from tests.unit.ui.ui_support import ADMIN, KEY_A, login, ui_client


def _engine() -> Engine:
    # metrics of its own: the counts on the page are this test's only
    return Engine(flows=[GREET, APPROVE], handlers=[greet, approval], metrics=Metrics())


async def test_the_page_shows_status_partitions_and_counts_and_refreshes_live() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        created = await client.post("/v1/executions", headers=bearer(KEY_A),
                                    json={"flowId": "greet"})
        await until_status(client, created.json()["execution"]["id"], "completed",
                           bearer(KEY_A))
        engine.metrics.dead_lettered.inc(2)
        engine.metrics.commands_rejected.labels("NOT_WAITING").inc()
        await login(client, KEY_A)
        page = await client.get("/ui/health")
        assert page.status_code == 200, page.text
        text = page.text
        assert '<span class="status completed">ok</span>' in text
        assert 'hx-get="/ui/health/live" hx-trigger="every 2s"' in text
        assert f"<dt>Partitions</dt><dd>{engine.partitions}</dd>" in text
        rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>(\d*)</td>", text)
        assert [int(r[0]) for r in rows] == list(range(engine.partitions))
        assert sum(int(r[1]) for r in rows) > 0  # events were applied
        assert "<dt>Commands dead-lettered</dt><dd class=\"error\">2</dd>" in text
        assert "<td><code>NOT_WAITING</code></td><td>1</td>" in text
        assert "WAL entries pending" not in text  # every tenant's: admins only
        live = await client.get("/ui/health/live")
        assert live.status_code == 200
        assert live.text.startswith('<div id="health"')
        assert "<html" not in live.text
        await login(client, ADMIN)
        assert "WAL entries pending" in (await client.get("/ui/health")).text


async def test_the_page_says_when_the_engine_cannot_serve() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        await login(client, ADMIN)
        await engine.stop()
        page = await client.get("/ui/health")
        assert page.status_code == 200
        assert "unavailable</span> the engine is not started" in page.text


def test_the_lag_summary_reads_the_histogram() -> None:
    metrics = Metrics()
    assert lag_summary(metrics).count == 0
    for seconds in (0.002, 0.002, 0.003, 0.2):
        metrics.projector_lag_seconds.observe(seconds)
    summary = lag_summary(metrics)
    assert summary.count == 4
    assert summary.mean_s is not None
    assert abs(summary.mean_s - 0.05175) < 1e-9
    assert summary.p95_under_s == 0.25
    metrics.handler_runs.labels("success").inc(3)
    assert [(s.labels, s.value) for s in samples(metrics, "flowmonkey_processor_handler_runs")
            ] == [({"outcome": "success"}, 3.0)]
