"""The explorer's tables pages: tables, and rows with the API's filters, ordering and
paging, scoped to the session's tenant; refused filters shown with the API's code."""

from __future__ import annotations

import pytest

from flowmonkey import ColumnDef, Engine, TableDef
from flowmonkey.api.ui import pages_tables
from tests.unit.test_api_tables import CHECKOUT, checkout
from tests.unit.ui.ui_support import ADMIN, KEY_A, KEY_B, login, ui_client

SCRIPT = "<script>alert(1)</script>"
ORDERS = TableDef(id="orders", name="Orders", columns=[
    ColumnDef(id="order_id", type="string", required=True),
    ColumnDef(id="total", type="number")])


async def _seeded(engine: Engine) -> None:
    for tenant, order_id, total in (("tenant-a", "a-1", 10), ("tenant-a", "a-2", 30),
                                    ("tenant-a", SCRIPT, 5), ("tenant-b", "b-1", 99)):
        await engine.projection.insert_row("orders", {"order_id": order_id, "total": total},
                                           tenant_id=tenant)


def _engine() -> Engine:
    return Engine(flows=[CHECKOUT], handlers=[checkout], tables=[ORDERS])


def _order_ids(html: str) -> list[str]:
    found = []
    for order_id in ("a-1", "a-2", "b-1", "&lt;script&gt;alert(1)&lt;/script&gt;"):
        at = html.find(f"<td>{order_id}</td>")
        if at >= 0:
            found.append((at, order_id))
    return [order_id for _, order_id in sorted(found)]


async def test_rows_are_scoped_filtered_and_ordered_as_in_the_api() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        await _seeded(engine)
        await login(client, KEY_A)
        tables = await client.get("/ui/tables")
        assert tables.status_code == 200
        assert 'href="/ui/tables/orders"' in tables.text
        assert "Orders" in tables.text
        mine = await client.get("/ui/tables/orders",
                                params={"orderBy": "total", "direction": "desc"})
        assert mine.status_code == 200, mine.text
        assert _order_ids(mine.text) == ["a-2", "a-1", "&lt;script&gt;alert(1)&lt;/script&gt;"]
        assert "3 rows" in mine.text
        assert SCRIPT not in mine.text
        big = await client.get("/ui/tables/orders", params={"filter": "total:gt:20"})
        assert _order_ids(big.text) == ["a-2"]
        both = await client.get("/ui/tables/orders",
                                params=[("filter", "total:gte:10"), ("filter", "total:lt:30")])
        assert _order_ids(both.text) == ["a-1"]
        # a tenant session's own tenant wins over a tenant filter
        other = await client.get("/ui/tables/orders", params={"tenant": "tenant-b"})
        assert "b-1" not in other.text
        await login(client, KEY_B)
        assert _order_ids((await client.get("/ui/tables/orders")).text) == ["b-1"]
        await login(client, ADMIN)
        assert "4 rows" in (await client.get("/ui/tables/orders")).text
        only_b = await client.get("/ui/tables/orders", params={"tenant": "tenant-b"})
        assert _order_ids(only_b.text) == ["b-1"]


async def test_a_refused_filter_shows_the_apis_code_and_keeps_the_form() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        await _seeded(engine)
        await login(client, ADMIN)
        bad = await client.get("/ui/tables/orders", params={"filter": "total-gt-20"})
        assert bad.status_code == 422
        assert "VALIDATION_ERROR" in bad.text
        assert 'value="total-gt-20"' in bad.text
        unknown = await client.get("/ui/tables/orders", params={"filter": "nope:eq:1"})
        assert unknown.status_code == 422, unknown.text
        assert '<code class="code">TABLE_ERROR</code>' in unknown.text
        assert "unknown column &#34;nope&#34;" in unknown.text
        assert (await client.get("/ui/tables/missing")).status_code == 404
        offset = await client.get("/ui/tables/orders", params={"offset": "-1"})
        assert offset.status_code == 422


async def test_rows_are_paged_by_offset_with_links_that_keep_the_filters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_tables, "PAGE_SIZE", 2)
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        await _seeded(engine)
        await login(client, ADMIN)
        first = await client.get("/ui/tables/orders",
                                 params={"filter": "total:gte:10", "orderBy": "total"})
        assert _order_ids(first.text) == ["a-1", "a-2"]
        assert ('href="/ui/tables/orders?filter=total%3Agte%3A10&amp;orderBy=total&amp;'
                'direction=asc&amp;offset=2"') in first.text
        second = await client.get("/ui/tables/orders", params={
            "filter": "total:gte:10", "orderBy": "total", "offset": "2"})
        assert _order_ids(second.text) == ["b-1"]
        assert "Next page" not in second.text
        assert "Previous page" in second.text
