"""The explorer's flows pages: the list with versions and statuses, one version with
its graph, steps and pipes, secrets redacted for tenant sessions, text escaped."""

from __future__ import annotations

from flowmonkey import Engine
from tests.behaviour.flows import flow, step
from tests.unit.api_support import APPROVE, GREET, approval, greet
from tests.unit.ui.ui_support import ADMIN, KEY_A, login, ui_client

SCRIPT = "<script>alert(1)</script>"
CALL = flow("call", step("fetch", "greet", to="ask",
                         config={"headers": {"Authorization": "Bearer s3cr3t-value"}}),
            step("ask", "approval", output_key="answer"), version="2.0.0")
CALL_V1 = {**flow("call", step("fetch", "greet")), "status": "archived",
           "name": SCRIPT}
CALL_DRAFT = {**flow("call", step("fetch", "greet"), version="3.0.0"), "status": "draft"}


def engine() -> Engine:
    return Engine(flows=[GREET, APPROVE, CALL, CALL_V1, CALL_DRAFT],
                  handlers=[greet, approval])


async def test_the_list_shows_each_flow_with_its_versions_and_statuses() -> None:
    async with ui_client(engine=engine()) as (client, _):
        await login(client, KEY_A)
        response = await client.get("/ui/flows")
        assert response.status_code == 200, response.text
        text = response.text
        for flow_id in ("approve", "call", "greet"):
            assert f'href="/ui/flows/{flow_id}"' in text
        assert 'href="/ui/flows/call?version=3.0.0">3.0.0</a> <span class="status draft">' \
            in text
        assert '2.0.0</a> <span class="status published">' in text
        assert '1.0.0</a> <span class="status archived">' in text
        drafts = await client.get("/ui/flows", params={"status": "draft"})
        assert 'href="/ui/flows/call"' in drafts.text
        assert 'href="/ui/flows/greet"' not in drafts.text
        search = await client.get("/ui/flows", params={"q": "GRE"})
        assert 'href="/ui/flows/greet"' in search.text
        assert 'href="/ui/flows/call"' not in search.text
        bad = await client.get("/ui/flows", params={"status": "gone"})
        assert bad.status_code == 422
        assert "VALIDATION_ERROR" in bad.text


async def test_a_flow_shows_its_graph_steps_and_versions_newest_published_first() -> None:
    async with ui_client(engine=engine()) as (client, _):
        await login(client, ADMIN)
        response = await client.get("/ui/flows/call")
        assert response.status_code == 200, response.text
        text = response.text
        # as the API: the newest published version by default, not the newer draft
        assert "v2.0.0" in text
        assert "<svg" in text
        assert 'data-step="fetch"' in text
        assert 'data-step="ask"' in text
        assert '<tr id="step-fetch">' in text
        assert '<a href="#step-ask">ask</a>' in text
        assert 'href="/ui/executions?flow=call&amp;version=2.0.0"' in text
        # an admin reads configs as registered
        assert "s3cr3t-value" in text
        draft = await client.get("/ui/flows/call", params={"version": "3.0.0"})
        assert draft.status_code == 200
        assert '<span class="status draft">draft</span></h1>' in draft.text
        assert (await client.get("/ui/flows/call", params={"version": "9"})).status_code \
            == 404
        missing = await client.get("/ui/flows/nope")
        assert missing.status_code == 404
        assert "Not found" in missing.text


async def test_tenant_sessions_read_secrets_redacted_and_every_text_is_escaped() -> None:
    async with ui_client(engine=engine()) as (client, _):
        await login(client, KEY_A)
        response = await client.get("/ui/flows/call")
        assert "s3cr3t-value" not in response.text
        assert "[redacted]" in response.text
        archived = await client.get("/ui/flows/call", params={"version": "1.0.0"})
        assert archived.status_code == 200
        assert SCRIPT not in archived.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in archived.text
        listing = await client.get("/ui/flows")
        assert SCRIPT not in listing.text
