"""The explorer's WAL page: pending pipe rows for admin sessions only, and the replay
and ack actions behind the CSRF check."""

from __future__ import annotations

import re

import httpx

from flowmonkey import ColumnDef, Engine
from flowmonkey.projections.base import RowQuery
from tests.unit.api_support import bearer, eventually
from tests.unit.test_api_tables import CHECKOUT, ORDERS, checkout
from tests.unit.ui.ui_support import ADMIN, KEY_A, csrf_of, login, ui_client

SCRIPT = "<script>alert(1)</script>"


async def _failed_row(client: httpx.AsyncClient, engine: Engine,
                      total: object = 7) -> str:
    """An order without its required id: its pipe row lands in the WAL."""
    created = await client.post("/v1/executions", headers=bearer(KEY_A), json={
        "flowId": "checkout", "context": {"order": {"total": total}}})
    assert created.status_code == 201, created.text

    async def parked() -> str | None:
        pending = await engine.projection.wal_pending()
        return pending[0].id if pending else None

    entry_id: str = await eventually(parked, what="the pipe row to land in the WAL")
    return entry_id


def _engine() -> Engine:
    return Engine(flows=[CHECKOUT], handlers=[checkout], tables=[ORDERS])


async def test_admins_see_the_pending_rows_and_tenant_sessions_are_refused() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        entry_id = await _failed_row(client, engine, total=SCRIPT)
        await login(client, KEY_A)
        refused = await client.get("/ui/wal")
        assert refused.status_code == 403
        assert "FORBIDDEN" in refused.text
        await login(client, ADMIN)
        page = await client.get("/ui/wal")
        assert page.status_code == 200, page.text
        assert entry_id in page.text
        assert "order_id" in page.text  # the reason names the missing column
        assert "1 pending entry shown" in page.text
        assert SCRIPT not in page.text
        assert "&lt;script&gt;" in page.text
        other = await client.get("/ui/wal", params={"tenant": "tenant-b"})
        assert entry_id not in other.text
        assert (await client.get("/ui/wal", params={"limit": "0"})).status_code == 422


async def test_replay_and_ack_need_the_session_token_and_do_what_they_say() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        entry_id = await _failed_row(client, engine)
        await login(client, ADMIN)
        csrf = csrf_of((await client.get("/ui/wal")).text)
        forged = await client.post("/ui/wal/replay", data={"csrf_token": "forged"})
        assert forged.status_code == 403
        assert "CSRF_FAILED" in forged.text
        missing = await client.post(f"/ui/wal/{entry_id}/ack", data={})
        assert missing.status_code == 403

        # the cause not fixed: the row still fails, and stays pending with one more try
        replayed = await client.post("/ui/wal/replay", data={"csrf_token": csrf})
        assert replayed.status_code == 303
        page = await client.get(replayed.headers["location"])
        assert "Replayed 0, still failing 1." in page.text
        [entry] = await engine.projection.wal_pending()
        assert entry.attempts == 1

        # the cause fixed (the column no longer required): the row lands
        await engine.projection.remove_column("orders", "order_id")
        await engine.projection.add_column("orders", ColumnDef(id="order_id", type="string"))
        replayed = await client.post("/ui/wal/replay", data={"csrf_token": csrf,
                                                             "limit": "10"})
        page = await client.get(replayed.headers["location"])
        assert "Replayed 1, still failing 0." in page.text
        assert "No pending entries." in page.text
        rows = await engine.projection.query_rows(RowQuery(table_id="orders"))
        assert rows.total == 1


async def test_ack_gives_up_on_one_entry_and_an_unknown_one_is_404() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        entry_id = await _failed_row(client, engine)
        await login(client, ADMIN)
        page = await client.get("/ui/wal")
        csrf = csrf_of(page.text)
        assert re.search(rf'action="/ui/wal/{entry_id}/ack"', page.text)
        acked = await client.post(f"/ui/wal/{entry_id}/ack", data={"csrf_token": csrf})
        assert acked.status_code == 303
        after = await client.get(acked.headers["location"])
        assert "The entry is acked" in after.text
        assert entry_id not in after.text
        assert await engine.projection.wal_pending() == []
        unknown = await client.post("/ui/wal/nope/ack", data={"csrf_token": csrf})
        assert unknown.status_code == 404
        await login(client, KEY_A)
        tenant_csrf = csrf_of((await client.get("/ui/jobs")).text)
        refused = await client.post(f"/ui/wal/{entry_id}/ack",
                                    data={"csrf_token": tenant_csrf})
        assert refused.status_code == 403
        assert "FORBIDDEN" in refused.text
