"""The explorer's triggers pages: the list with next fires and filters, one trigger
with a schedule's next fire times, and pause/resume for admin sessions behind the CSRF
check, scoped to the session's tenant."""

from __future__ import annotations

from flowmonkey import Engine
from tests.unit.api_support import APPROVE, GREET, approval, eventually, greet
from tests.unit.ui.ui_support import ADMIN, KEY_A, KEY_B, csrf_of, login, ui_client

SCRIPT = "<script>alert(1)</script>"
HOOK = {"id": "hook-a", "kind": "webhook", "flowId": "greet", "tenantId": "tenant-a",
        "description": SCRIPT, "webhook": {"secret": "hooks/a"}}
NIGHTLY = {"id": "nightly-a", "kind": "schedule", "flowId": "greet", "tenantId": "tenant-a",
           "schedule": {"cron": "30 2 * * *"}}
HOOK_B = {"id": "hook-b", "kind": "webhook", "flowId": "greet", "tenantId": "tenant-b",
          "webhook": {"secret": "hooks/b"}}


def _engine() -> Engine:
    return Engine(flows=[GREET, APPROVE], handlers=[greet, approval],
                  triggers=[HOOK, NIGHTLY, HOOK_B])


async def _registered(engine: Engine) -> None:
    async def all_there() -> bool:
        found = await engine.projection.list_triggers(limit=10)
        return len(found.items) == 3

    await eventually(all_there, what="the triggers to be registered")


async def test_triggers_are_listed_with_their_next_fire_within_the_sessions_tenant() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        await _registered(engine)
        await login(client, KEY_A)
        listing = await client.get("/ui/triggers")
        assert listing.status_code == 200, listing.text
        assert 'href="/ui/triggers/hook-a"' in listing.text
        assert 'href="/ui/triggers/nightly-a"' in listing.text
        assert "hook-b" not in listing.text
        assert "Pause" not in listing.text  # a tenant session has no actions
        schedules = await client.get("/ui/triggers", params={"kind": "schedule"})
        assert "hook-a" not in schedules.text
        assert "T02:30:00.000Z" in schedules.text  # its next fire
        nightly = await client.get("/ui/triggers/nightly-a")
        assert nightly.status_code == 200
        assert nightly.text.count("T02:30:00.000Z</li>") == 5
        hook = await client.get("/ui/triggers/hook-a")
        assert SCRIPT not in hook.text
        assert "&lt;script&gt;" in hook.text
        assert (await client.get("/ui/triggers/hook-b")).status_code == 404
        assert (await client.get("/ui/triggers", params={"enabled": "maybe"})).status_code \
            == 422
        await login(client, KEY_B)
        assert "hook-b" in (await client.get("/ui/triggers")).text


async def test_admins_pause_and_resume_with_the_session_token_and_tenants_may_not() -> None:
    engine = _engine()
    async with ui_client(engine=engine) as (client, _):
        await _registered(engine)
        await login(client, KEY_A)
        tenant_page = await client.get("/ui/triggers/hook-a")
        refused = await client.post("/ui/triggers/hook-a/pause",
                                    data={"csrf_token": csrf_of(tenant_page.text)})
        assert refused.status_code == 403
        assert "FORBIDDEN" in refused.text

        await login(client, ADMIN)
        page = await client.get("/ui/triggers/hook-a")
        assert 'action="/ui/triggers/hook-a/pause"' in page.text
        assert "data-confirm=" in page.text
        forged = await client.post("/ui/triggers/hook-a/pause", data={"csrf_token": "x"})
        assert forged.status_code == 403
        assert "CSRF_FAILED" in forged.text
        record = await engine.projection.get_trigger("hook-a")
        assert record is not None
        assert record.enabled

        csrf = csrf_of(page.text)
        paused = await client.post("/ui/triggers/hook-a/pause",
                                   data={"csrf_token": csrf, "reason": "maintenance"})
        assert paused.status_code == 303
        assert paused.headers["location"] == "/ui/triggers/hook-a?done=paused"
        shown = await client.get(paused.headers["location"])
        assert "Paused." in shown.text
        assert '<span class="status waiting">paused</span>' in shown.text
        assert 'action="/ui/triggers/hook-a/resume"' in shown.text
        record = await engine.projection.get_trigger("hook-a")
        assert record is not None
        assert not record.enabled
        again = await client.post("/ui/triggers/hook-a/pause", data={"csrf_token": csrf})
        assert again.headers["location"] == "/ui/triggers/hook-a?done=unchanged-paused"

        resumed = await client.post("/ui/triggers/hook-a/resume", data={"csrf_token": csrf})
        assert resumed.headers["location"] == "/ui/triggers/hook-a?done=resumed"
        record = await engine.projection.get_trigger("hook-a")
        assert record is not None
        assert record.enabled

        long = await client.post("/ui/triggers/hook-a/pause",
                                 data={"csrf_token": csrf, "reason": "x" * 1001})
        assert long.status_code == 422
        nul = await client.post("/ui/triggers/hook-a/pause",
                                data={"csrf_token": csrf, "reason": "a\x00b"})
        assert nul.status_code == 422
        assert "VALIDATION_ERROR" in nul.text
        missing = await client.post("/ui/triggers/nope/pause", data={"csrf_token": csrf})
        assert missing.status_code == 404
