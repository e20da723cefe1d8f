"""API keys and tenant scoping: who may call, what each key sees, and that a key is
never written anywhere (logs, error bodies, reprs)."""

from __future__ import annotations

import logging

import pytest

from flowmonkey.api import ApiAuth
from flowmonkey.api.auth import ApiKey
from flowmonkey.events import names as n
from tests.unit.api_support import (
    ADMIN,
    KEY_A,
    KEY_B,
    KEYS,
    api_client,
    bearer,
    until_status,
)


async def test_a_request_without_a_key_is_401_saying_which_header_to_send() -> None:
    async with api_client() as client:
        response = await client.get("/v1/executions")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == "UNAUTHENTICATED"
    assert "Authorization: Bearer <key>" in error["message"]
    assert "X-API-Key" in error["message"]


async def test_a_wrong_key_is_401_and_neither_the_body_nor_the_log_quote_any_key(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-that-must-not-leak-42"
    async with api_client() as client:
        response = await client.get("/v1/executions", headers=bearer(wrong))
        by_header = await client.get("/v1/flows", headers={"X-API-Key": wrong})
        accepted = await client.get("/v1/flows", headers=bearer(KEY_A))
    assert response.status_code == 401
    assert by_header.status_code == 401
    assert accepted.status_code == 200
    assert response.json()["error"]["message"].startswith("the API key is not valid")
    for secret in (wrong, KEY_A, KEY_B, ADMIN):
        assert secret not in response.text
        assert secret not in caplog.text
    assert "unknown API key" in caplog.text  # the rejection itself is logged


def test_keys_are_not_in_the_repr_of_the_auth_or_of_a_key() -> None:
    auth = ApiAuth(KEYS)
    assert KEY_A not in repr(auth)
    for key in KEYS:
        assert key.secret not in repr(key)
        assert key.secret not in str(key)


def test_a_key_is_matched_whole_against_every_configured_key() -> None:
    auth = ApiAuth(KEYS)
    assert auth.match(KEY_B) == KEYS[1]
    assert auth.match(ADMIN) == KEYS[2]
    assert auth.match(KEY_A[:-1]) is None
    assert auth.match(KEY_A + "x") is None
    assert auth.match("") is None


async def test_both_headers_are_accepted() -> None:
    async with api_client() as client:
        bearer_response = await client.get("/v1/flows", headers=bearer(KEY_A))
        api_key_response = await client.get("/v1/flows", headers={"X-API-Key": KEY_A})
    assert bearer_response.status_code == 200
    assert api_key_response.status_code == 200


async def test_health_needs_no_key() -> None:
    async with api_client() as client:
        assert (await client.get("/health")).status_code == 200


async def test_a_tenant_key_sees_only_its_tenant_and_another_tenants_id_is_404() -> None:
    async with api_client() as client:
        theirs = await client.post("/v1/executions", headers=bearer(KEY_B),
                                   json={"flowId": "approve"})
        mine = await client.post("/v1/executions", headers=bearer(KEY_A),
                                 json={"flowId": "greet"})
        their_id = theirs.json()["execution"]["id"]
        assert theirs.json()["execution"]["tenantId"] == "tenant-b"
        assert mine.json()["execution"]["tenantId"] == "tenant-a"
        # waiting, so a resume with its real token or a cancel would change it if allowed
        token = (await until_status(client, their_id, "waiting", bearer(KEY_B)))["resumeToken"]

        listed = await client.get("/v1/executions", headers=bearer(KEY_A))
        assert [e["id"] for e in listed.json()["items"]] == [mine.json()["execution"]["id"]]
        a = bearer(KEY_A)
        for method, path, body in [
                ("GET", f"/v1/executions/{their_id}", None),
                ("GET", f"/v1/executions/{their_id}/events", None),
                ("GET", f"/v1/executions/{their_id}/state?seq=1", None),
                ("POST", f"/v1/executions/{their_id}/cancel", {}),
                ("POST", f"/v1/executions/{their_id}/resume", {"token": token}),
                ("POST", f"/v1/executions/{their_id}/resume", {"token": "x"}),
                ("POST", "/v1/executions", {"flowId": "greet", "parentExecutionId": their_id})]:
            response = await client.request(method, path, headers=a, json=body)
            assert response.status_code == 404, (path, response.text)
            # word for word what an id that does not exist gets
            assert response.json()["error"] == {
                "code": "EXECUTION_NOT_FOUND", "message": f"execution {their_id!r} not found"}
        still = await client.get(f"/v1/executions/{their_id}", headers=bearer(KEY_B))
        assert still.json()["status"] == "waiting"
        assert still.json()["resumeToken"] == token
        history = await client.get(f"/v1/executions/{their_id}/events", headers=bearer(KEY_B))
        types = {e["type"] for e in history.json()["events"]}
        assert not types & {n.TOKEN_USED, n.EXECUTION_RESUMED, n.EXECUTION_CANCELLING,
                            n.EXECUTION_CANCELLED, n.CHILD_STARTED}


async def test_a_cursor_from_one_tenants_listing_pages_only_the_others_own() -> None:
    async with api_client() as client:
        for _ in range(3):
            for key in (KEY_A, KEY_B):
                created = await client.post("/v1/executions", headers=bearer(key),
                                            json={"flowId": "greet"})
                assert created.status_code == 201
        first = await client.get("/v1/executions", params={"limit": 1}, headers=bearer(KEY_A))
        cursor = first.json()["nextCursor"]
        assert cursor is not None
        as_b = await client.get("/v1/executions", params={"cursor": cursor},
                                headers=bearer(KEY_B))
    assert as_b.status_code == 200
    assert as_b.json()["items"]
    assert {e["tenantId"] for e in as_b.json()["items"]} == {"tenant-b"}


async def test_a_tenant_key_cannot_act_for_another_tenant_by_header() -> None:
    async with api_client() as client:
        response = await client.post("/v1/executions",
                                     headers=bearer(KEY_A, "tenant-b"),
                                     json={"flowId": "greet"})
        same = await client.get("/v1/executions", headers=bearer(KEY_A, "tenant-a"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert same.status_code == 200


async def test_an_admin_key_acts_for_the_tenant_named_by_x_tenant_id() -> None:
    async with api_client() as client:
        created = await client.post("/v1/executions", headers=bearer(ADMIN, "tenant-b"),
                                    json={"flowId": "greet"})
        assert created.status_code == 201
        execution_id = created.json()["execution"]["id"]
        assert created.json()["execution"]["tenantId"] == "tenant-b"
        as_b = await client.get(f"/v1/executions/{execution_id}", headers=bearer(KEY_B))
        as_a = await client.get(f"/v1/executions/{execution_id}", headers=bearer(KEY_A))
        admin_as_a = await client.get(f"/v1/executions/{execution_id}",
                                      headers=bearer(ADMIN, "tenant-a"))
        admin = await client.get(f"/v1/executions/{execution_id}", headers=bearer(ADMIN))
    assert as_b.status_code == 200
    assert as_a.status_code == 404
    assert admin_as_a.status_code == 404
    assert admin.status_code == 200


async def test_without_auth_every_request_is_an_admin() -> None:
    async with api_client(None) as client:
        created = await client.post("/v1/executions", json={"flowId": "greet"},
                                    headers={"X-Tenant-Id": "t1"})
        listed = await client.get("/v1/executions")
    assert created.status_code == 201
    assert created.json()["execution"]["tenantId"] == "t1"
    assert len(listed.json()["items"]) == 1


async def test_an_x_tenant_id_outside_the_tenant_rule_is_400_and_not_echoed() -> None:
    async with api_client() as client:
        response = await client.post("/v1/executions", json={"flowId": "greet"},
                                     headers=bearer(ADMIN, "acme/greet"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_TENANT_ID"
    assert "acme/greet" not in response.text


async def test_an_idempotency_hit_on_another_tenants_execution_is_never_returned() -> None:
    # "acme/greet" + flow "approve" + key "k" and "acme" + flow "greet" + key "approve/k"
    # share the kernel's scope; settings refuse such a tenant, the route must hold anyway
    other = ApiKey("acme-greet-key-0123456789", "acme/greet")
    mine = ApiKey("acme-key-0123456789abcdef", "acme")
    async with api_client(ApiAuth([other, mine])) as client:
        theirs = await client.post("/v1/executions", headers=bearer(other.secret), json={
            "flowId": "approve", "idempotencyKey": "k", "context": {"secret": "theirs"}})
        assert theirs.status_code == 201
        response = await client.post("/v1/executions", headers=bearer(mine.secret),
                                     json={"flowId": "greet", "idempotencyKey": "approve/k"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_CONFLICT"
    assert "theirs" not in response.text
    assert theirs.json()["execution"]["id"] not in response.text
