"""The explorer's executions pages over a real PostgreSQL projection: filters and
counts, search by idempotency key, the execution page with its timeline, time travel
and verify against the log, and resume from the page."""

from __future__ import annotations

import re

import httpx
import pytest

from flowmonkey import Engine
from flowmonkey.api import create_app
from flowmonkey.projections.postgres import PostgresProjection
from tests.unit.api_support import APPROVE, AUTH, GREET, approval, greet
from tests.unit.ui.ui_support import BASE, KEY_A, csrf_of, login, settled, start

pytestmark = pytest.mark.integration


async def test_the_executions_pages_over_postgres(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    engine = Engine(flows=[GREET, APPROVE], handlers=[greet, approval],
                    projection=PostgresProjection(dsn, schema))
    async with engine:
        app = create_app(engine, AUTH, ui_secret="a-test-secret-of-the-explorer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=BASE) as client:
            done = await start(client, KEY_A, "greet", {"name": "<i>Ada</i>"},
                               idempotencyKey="order-9")
            await settled(client, KEY_A, done, "completed")
            waiting = await start(client, KEY_A, "approve")
            body = await settled(client, KEY_A, waiting, "waiting")
            await login(client, KEY_A)

            listed = await client.get("/ui/executions")
            assert re.findall(r'data-execution="([^"]+)"', listed.text) == [waiting, done]
            assert 'data-status="waiting">waiting <b>1</b>' in listed.text
            only = await client.get("/ui/executions?status=completed&flow=greet&version=1.0.0"
                                    "&created_from=2000-01-01T00:00")
            assert re.findall(r'data-execution="([^"]+)"', only.text) == [done]
            keyed = await client.get("/ui/executions?q=order-9")
            assert re.findall(r'data-execution="([^"]+)"', keyed.text) == [done]

            page = await client.get(f"/ui/executions/{done}")
            assert page.status_code == 200
            assert "&lt;i&gt;Ada&lt;/i&gt;" in page.text
            assert "execution.completed" in page.text
            at = await client.get(f"/ui/executions/{done}/at?at=1")
            assert "context.name" in at.text
            verify = await client.get(f"/ui/executions/{done}/verify",
                                      headers={"HX-Request": "true"})
            assert 'data-result="equal"' in verify.text

            csrf = csrf_of((await client.get(f"/ui/executions/{waiting}")).text)
            resumed = await client.post(f"/ui/executions/{waiting}/resume",
                                        data={"csrf_token": csrf,
                                              "token": body["resumeToken"]})
            assert resumed.status_code == 303, resumed.text
            await settled(client, KEY_A, waiting, "completed")
