"""Shared pieces of the explorer's tests: an app with the API tests' keys, a client
that logs in through the form, and reading the CSRF token off a page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from flowmonkey import Engine
from flowmonkey.api import ApiAuth, create_app
from tests.unit.api_support import (
    ADMIN,
    APPROVE,
    AUTH,
    GREET,
    KEY_A,
    KEY_B,
    approval,
    bearer,
    greet,
    until_status,
)

__all__ = ["ADMIN", "KEY_A", "KEY_B", "csrf_of", "login", "settled", "start", "ui_client"]

BASE = "http://testserver"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF_FIELD.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


@asynccontextmanager
async def ui_client(auth: ApiAuth | None = AUTH, *, engine: Engine | None = None,
                    secret: str | None = "a-test-secret-of-the-explorer",
                    ) -> AsyncIterator[tuple[httpx.AsyncClient, Engine]]:
    """A started embedded engine with GREET and APPROVE, and a client of its app."""
    engine = engine or Engine(flows=[GREET, APPROVE], handlers=[greet, approval])
    async with engine:
        app = create_app(engine, auth, ui_secret=secret)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client, engine


async def login(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """Log in through the form (its double-submit token included)."""
    form = await client.get("/ui/login")
    assert form.status_code == 200, form.text
    return await client.post("/ui/login", data={"api_key": key,
                                                "csrf_token": csrf_of(form.text)})


async def start(client: httpx.AsyncClient, key: str, flow_id: str = "greet",
                context: dict[str, Any] | None = None, **extra: Any) -> str:
    """Start an execution through the API (as ``key``); its id."""
    created = await client.post("/v1/executions", headers=bearer(key),
                                json={"flowId": flow_id, "context": context or {}, **extra})
    assert created.status_code in (200, 201), created.text
    execution_id: str = created.json()["execution"]["id"]
    return execution_id


async def settled(client: httpx.AsyncClient, key: str, execution_id: str,
                  status: str) -> dict[str, Any]:
    return await until_status(client, execution_id, status, bearer(key))
