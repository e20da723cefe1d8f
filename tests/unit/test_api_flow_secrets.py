"""Flow definitions are shared by every tenant: a tenant key reads them with the
secrets in step configs redacted, an admin key as registered (issue 10, finding 16)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey import Engine
from flowmonkey.api.redaction import is_secret_name, redact_config
from flowmonkey.handlers.http import HttpHandler
from tests.behaviour.flows import flow, step
from tests.unit.api_support import ADMIN, KEY_A, api_client, bearer

BEARER = "Bearer sk_live_51HxQ"
SECRETS = ("sk_live_51HxQ", "hunter2-pw", "tok-in-url-77", "basic-pass-9",
           "nested-secret-3", "apikey-value-5", "x-custom-header-value")

SECRET_FLOW = flow("calls-out", step("call", "http", config={
    "url": "https://user:basic-pass-9@api.example.com/v1/charges?api_key=tok-in-url-77&x=1",
    "method": "POST",
    "headers": {"Authorization": BEARER, "X-Custom": "x-custom-header-value",
                "X-Vaulted": {"$vault": "payments-token"}},
    "body": {"order": 1, "auth": {"password": "hunter2-pw", "user": "ada"},
             "options": [{"clientSecret": "nested-secret-3"}], "Api-Key": "apikey-value-5"},
    "timeout": 5000,
}))


def text_of(response: Any) -> str:
    assert response.status_code == 200, response.text
    return str(response.text)


@pytest.mark.parametrize("path", ["/v1/flows/calls-out", "/v1/flows/calls-out?version=1.0.0"])
async def test_a_tenant_key_reads_flow_configs_with_secrets_redacted(path: str) -> None:
    engine = Engine(flows=[SECRET_FLOW], handlers=[HttpHandler()])
    async with api_client(engine=engine) as client:
        tenant = await client.get(path, headers=bearer(KEY_A))
        admin = await client.get(path, headers=bearer(ADMIN))
        listed = await client.get("/v1/flows", headers=bearer(KEY_A))

    for secret in SECRETS:
        assert secret not in text_of(tenant), secret
        assert secret not in text_of(listed), secret
        assert secret in text_of(admin), secret
    config = tenant.json()["flow"]["steps"]["call"]["config"]
    assert config["headers"] == {"Authorization": "[redacted]", "X-Custom": "[redacted]",
                                 "X-Vaulted": {"$vault": "payments-token"}}
    assert config["url"] == ("https://user:[redacted]@api.example.com/v1/charges"
                             "?api_key=[redacted]&x=1")
    assert config["body"] == {"order": 1, "auth": {"password": "[redacted]", "user": "[redacted]"},
                              "options": [{"clientSecret": "[redacted]"}],
                              "Api-Key": "[redacted]"}
    # what is no secret is shown as it is
    assert (config["method"], config["timeout"]) == ("POST", 5000)
    assert admin.json()["flow"]["steps"]["call"]["config"] == \
        SECRET_FLOW["steps"]["call"]["config"]


async def test_an_admin_acting_for_a_tenant_still_reads_secrets() -> None:
    engine = Engine(flows=[SECRET_FLOW], handlers=[HttpHandler()])
    async with api_client(engine=engine) as client:
        as_tenant = await client.get("/v1/flows/calls-out", headers=bearer(ADMIN, "tenant-a"))
    assert BEARER in text_of(as_tenant)


@pytest.mark.parametrize(("name", "secret"), [
    ("Authorization", True), ("proxy-authorization", True), ("accessToken", True),
    ("client_secret", True), ("PASSWORD", True), ("api_key", True), ("apiKey", True),
    ("X-API-KEY", True), ("apikey", True), ("Cookie", True), ("auth", True),
    ("url", False), ("method", False), ("author", False), ("keys", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redaction_leaves_the_original_config_alone() -> None:
    config = {"headers": {"A": "b"}, "password": "p", "list": [{"token": "t"}]}
    redacted = redact_config(config)
    assert redacted == {"headers": {"A": "[redacted]"}, "password": "[redacted]",
                        "list": [{"token": "[redacted]"}]}
    assert config == {"headers": {"A": "b"}, "password": "p", "list": [{"token": "t"}]}
