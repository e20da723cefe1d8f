"""The explorer's pages over a real PostgreSQL projection: the WAL page lists a row
parked there, replays it once its table exists, and every other page answers."""

from __future__ import annotations

import httpx
import pytest

from flowmonkey import Engine
from flowmonkey.api import create_app
from flowmonkey.projections.postgres import PostgresProjection
from tests.contract.projection_contract import ORDERS, created, pipe_row
from tests.unit.api_support import AUTH, GREET, greet
from tests.unit.ui.ui_support import ADMIN, BASE, KEY_A, csrf_of, login

pytestmark = pytest.mark.integration


async def test_the_wal_and_every_page_over_postgres(pg_schema: tuple[str, str]) -> None:
    dsn, schema = pg_schema
    engine = Engine(flows=[GREET], handlers=[greet],
                    projection=PostgresProjection(dsn, schema))
    async with engine:
        await engine.projection.apply_events([
            created("e1", tenant="tenant-a"),
            pipe_row("e1", 2, {"sku": "<b>a</b>"}, tenant="tenant-a")])
        [entry] = await engine.projection.wal_pending()
        app = create_app(engine, AUTH, ui_secret="a-test-secret-of-the-explorer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=BASE) as client:
            await login(client, KEY_A)
            for path in ("/ui/flows", "/ui/flows/greet", "/ui/tables", "/ui/jobs",
                         "/ui/triggers", "/ui/forms", "/ui/health"):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
            assert (await client.get("/ui/wal")).status_code == 403

            await login(client, ADMIN)
            page = await client.get("/ui/wal")
            assert page.status_code == 200, page.text
            assert entry.id in page.text
            assert "&lt;b&gt;a&lt;/b&gt;" in page.text
            csrf = csrf_of(page.text)
            failing = await client.post("/ui/wal/replay", data={"csrf_token": csrf})
            assert "Replayed 0, still failing 1." in \
                (await client.get(failing.headers["location"])).text

            await engine.projection.create_table(ORDERS)
            replayed = await client.post("/ui/wal/replay", data={"csrf_token": csrf})
            after = await client.get(replayed.headers["location"])
            assert "Replayed 1, still failing 0." in after.text
            assert "No pending entries." in after.text
            rows = await client.get("/ui/tables/orders")
            assert rows.status_code == 200
            assert "1 row;" in rows.text
