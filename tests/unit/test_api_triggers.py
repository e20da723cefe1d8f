"""``/v1/triggers``: listing and reading scoped by tenant, a schedule's next fire
times, pausing and resuming with admin keys only."""

from __future__ import annotations

from typing import Any

import httpx

from flowmonkey import Engine
from flowmonkey.events import names as n
from tests.contract.trigger_projection_contract import registered, tev
from tests.unit.api_support import (
    ADMIN,
    APPROVE,
    GREET,
    ISO_UTC,
    KEY_A,
    KEY_B,
    api_client,
    approval,
    bearer,
    greet,
)


async def _seeded(engine: Engine) -> None:
    """Trigger records as the projector would hold them (their events by hand)."""
    await engine.projection.apply_events([
        registered("hook-a", tenant="tenant-a"),
        registered("nightly-a", kind="schedule", tenant="tenant-a", cron="30 2 * * *"),
        registered("hook-b", tenant="tenant-b"),
        tev(n.TRIGGER_DISABLED, "hook-b", 2, tenant="tenant-b"),
    ])


def _engine() -> Engine:
    return Engine(flows=[GREET, APPROVE], handlers=[greet, approval])


async def _ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get("/v1/triggers", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


async def test_tenant_keys_see_their_tenants_triggers_and_admins_all() -> None:
    engine = _engine()
    async with api_client(engine=engine) as client:
        await _seeded(engine)
        assert await _ids(client, bearer(KEY_A)) == ["hook-a", "nightly-a"]
        assert await _ids(client, bearer(KEY_B)) == ["hook-b"]
        assert await _ids(client, bearer(ADMIN)) == ["hook-a", "hook-b", "nightly-a"]
        assert await _ids(client, bearer(ADMIN, "tenant-b")) == ["hook-b"]
        assert await _ids(client, bearer(ADMIN), kind="schedule") == ["nightly-a"]
        assert await _ids(client, bearer(ADMIN), enabled="false") == ["hook-b"]
        assert await _ids(client, bearer(ADMIN), flowId="orders", limit=1) == ["hook-a"]
        one = await client.get("/v1/triggers/hook-a", headers=bearer(KEY_A))
        assert one.status_code == 200, one.text
        body = one.json()
        assert (body["id"], body["kind"], body["flowId"], body["tenantId"], body["enabled"]) \
            == ("hook-a", "webhook", "orders", "tenant-a", True)
        assert body["definition"]["webhook"] == {"secret": "gh-secret"}
        assert ISO_UTC.match(body["createdAt"])
        assert ISO_UTC.match(body["updatedAt"])
        other = await client.get("/v1/triggers/hook-a", headers=bearer(KEY_B))
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "TRIGGER_NOT_FOUND"
        assert (await client.get("/v1/triggers")).status_code == 401


async def test_a_schedules_next_fire_times() -> None:
    engine = _engine()
    async with api_client(engine=engine) as client:
        await _seeded(engine)
        response = await client.get("/v1/triggers/nightly-a/next", headers=bearer(KEY_A),
                                    params={"count": 3})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["triggerId"], body["enabled"], body["timezone"]) == (
            "nightly-a", True, "UTC")
        assert len(body["times"]) == 3
        assert all(ISO_UTC.match(t) and t[11:19] == "02:30:00" for t in body["times"])
        assert body["times"] == sorted(body["times"])
        webhook = await client.get("/v1/triggers/hook-a/next", headers=bearer(KEY_A))
        assert webhook.status_code == 409
        assert webhook.json()["error"]["code"] == "NOT_A_SCHEDULE"
        too_many = await client.get("/v1/triggers/nightly-a/next", headers=bearer(KEY_A),
                                    params={"count": 101})
        assert too_many.status_code == 422
        hidden = await client.get("/v1/triggers/nightly-a/next", headers=bearer(KEY_B))
        assert hidden.status_code == 404


async def test_tenant_keys_may_not_pause_or_resume() -> None:
    engine = _engine()
    async with api_client(engine=engine) as client:
        await _seeded(engine)
        for action in ("pause", "resume"):
            response = await client.post(f"/v1/triggers/hook-a/{action}",
                                         headers=bearer(KEY_A), json={"reason": "x"})
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "FORBIDDEN"
        missing = await client.post("/v1/triggers/nope/pause", headers=bearer(ADMIN))
        assert missing.status_code == 404
