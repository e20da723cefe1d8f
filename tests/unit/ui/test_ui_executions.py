"""The explorer's executions list: filters, search, counts, paging, live rows, tenant
scoping and escaping."""

from __future__ import annotations

import re

from tests.unit.ui.ui_support import ADMIN, KEY_A, KEY_B, login, settled, start, ui_client


def row_ids(html: str) -> list[str]:
    return re.findall(r'data-execution="([^"]+)"', html)


async def test_the_list_shows_executions_newest_first_with_counts_per_status() -> None:
    async with ui_client() as (client, _):
        done = await start(client, KEY_A, "greet", {"name": "Ada"})
        await settled(client, KEY_A, done, "completed")
        waiting = await start(client, KEY_A, "approve")
        await settled(client, KEY_A, waiting, "waiting")
        await login(client, KEY_A)
        page = await client.get("/ui/executions")
        assert page.status_code == 200
        assert row_ids(page.text) == [waiting, done]
        assert re.search(r'data-status="waiting">waiting <b>1</b>', page.text)
        assert re.search(r'data-status="completed">completed <b>1</b>', page.text)
        assert re.search(r'data-status="failed">failed <b>0</b>', page.text)
        # the first page polls its rows; the rows partial is the same table alone
        assert 'hx-get="/ui/executions/rows?' in page.text
        rows = await client.get("/ui/executions/rows")
        assert rows.status_code == 200
        assert "<html" not in rows.text
        assert row_ids(rows.text) == [waiting, done]


async def test_filters_by_status_flow_and_version() -> None:
    async with ui_client() as (client, _):
        done = await start(client, KEY_A, "greet")
        await settled(client, KEY_A, done, "completed")
        waiting = await start(client, KEY_A, "approve")
        await settled(client, KEY_A, waiting, "waiting")
        await login(client, KEY_A)
        assert row_ids((await client.get("/ui/executions?status=waiting")).text) == [waiting]
        assert row_ids((await client.get("/ui/executions?flow=greet")).text) == [done]
        assert row_ids((await client.get("/ui/executions?flow=greet&version=1.0.0")).text) \
            == [done]
        assert row_ids((await client.get("/ui/executions?flow=greet&version=9")).text) == []
        bad = await client.get("/ui/executions?status=sleeping")
        assert bad.status_code == 400
        assert "status must be one of" in bad.text


async def test_a_time_range_limits_the_list() -> None:
    async with ui_client() as (client, _):
        first = await start(client, KEY_A, "greet")
        await login(client, KEY_A)
        assert row_ids((await client.get(
            "/ui/executions?created_from=2000-01-01T00:00")).text) == [first]
        assert row_ids((await client.get(
            "/ui/executions?created_to=2000-01-01T00:00")).text) == []
        assert row_ids((await client.get(
            "/ui/executions?created_from=2999-01-01T00:00:00Z")).text) == []
        bad = await client.get("/ui/executions?created_from=yesterday")
        assert bad.status_code == 400


async def test_search_by_id_opens_the_execution_and_by_idempotency_key_lists_it() -> None:
    async with ui_client() as (client, _):
        keyed = await start(client, KEY_A, "greet", idempotencyKey="order-42")
        await start(client, KEY_A, "greet")
        await login(client, KEY_A)
        by_id = await client.get(f"/ui/executions?q={keyed}")
        assert by_id.status_code == 303
        assert by_id.headers["location"] == f"/ui/executions/{keyed}"
        by_key = await client.get("/ui/executions?q=order-42")
        assert by_key.status_code == 200
        assert row_ids(by_key.text) == [keyed]
        assert "idempotency key “order-42”" in by_key.text


async def test_cursor_paging_walks_every_execution_once() -> None:
    async with ui_client() as (client, _):
        from flowmonkey.api.ui import pages_executions

        started = [await start(client, KEY_A, "greet") for _ in range(5)]
        await login(client, KEY_A)
        old = pages_executions.PAGE_SIZE
        pages_executions.PAGE_SIZE = 2
        try:
            seen: list[str] = []
            url = "/ui/executions"
            pages = 0
            while True:
                page = await client.get(url)
                assert page.status_code == 200
                seen += row_ids(page.text)
                pages += 1
                found = re.search(r'href="(/ui/executions\?[^"]*cursor=[^"]+)" rel="next"',
                                  page.text)
                if not found:
                    break
                url = found.group(1).replace("&amp;", "&")
                # a later page does not poll (its rows would shift under the reader)
                assert 'hx-trigger="every' not in (await client.get(url)).text
            assert pages == 3
            assert sorted(seen) == sorted(started)
            assert len(seen) == 5
        finally:
            pages_executions.PAGE_SIZE = old


async def test_a_tenant_sees_only_its_executions_and_an_admin_may_pick_a_tenant() -> None:
    async with ui_client() as (client, _):
        mine = await start(client, KEY_A, "greet")
        theirs = await start(client, KEY_B, "greet")
        await login(client, KEY_A)
        assert row_ids((await client.get("/ui/executions")).text) == [mine]
        # a tenant key's tenant filter is ignored: it cannot widen or switch its view
        assert row_ids((await client.get("/ui/executions?tenant=tenant-b")).text) == [mine]
        assert (await client.get(f"/ui/executions?q={theirs}")).status_code == 200
        client.cookies.clear()
        await login(client, ADMIN)
        assert set(row_ids((await client.get("/ui/executions")).text)) == {mine, theirs}
        assert row_ids((await client.get("/ui/executions?tenant=tenant-b")).text) == [theirs]
        assert (await client.get("/ui/executions?tenant=bad/tenant")).status_code == 400


async def test_user_values_are_escaped_in_the_list() -> None:
    async with ui_client() as (client, _):
        await start(client, KEY_A, "greet", idempotencyKey="<script>alert(1)</script>")
        await login(client, KEY_A)
        page = await client.get("/ui/executions?q=<script>alert(1)</script>")
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
