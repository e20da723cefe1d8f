"""Shared pieces of the HTTP API tests: small flows, an engine, a client, polling."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from flowmonkey import Engine, HandlerParams, Result, StepResult, handler
from flowmonkey.api import ApiAuth, create_app
from flowmonkey.api.auth import ApiKey
from tests.behaviour.flows import flow, step

KEY_A = "key-of-tenant-a-0123456789"
KEY_B = "key-of-tenant-b-0123456789"
ADMIN = "admin-key-0123456789abcdef"
KEYS = (ApiKey(KEY_A, "tenant-a"), ApiKey(KEY_B, "tenant-b"), ApiKey(ADMIN, None))
AUTH = ApiAuth(KEYS)

#: every point in time the API answers: ISO-8601, UTC, milliseconds, ``Z``
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@handler("greet")
async def greet(p: HandlerParams) -> StepResult:
    return Result.success({"hello": p.execution.context.get("name", "world")})


@handler("approval")
async def approval(p: HandlerParams) -> StepResult:
    return Result.wait_for_signal("manager approval")


GREET = flow("greet", step("hello", "greet", output_key="greeting"))
APPROVE = flow("approve", step("ask", "approval", output_key="answer", to="done"),
               step("done", "greet", output_key="greeting"))


def bearer(key: str, tenant: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if tenant is not None:
        headers["X-Tenant-Id"] = tenant
    return headers


@asynccontextmanager
async def api_client(auth: ApiAuth | None = AUTH, *,
                     engine: Engine | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A started embedded engine with GREET and APPROVE, and a client of its API."""
    engine = engine or Engine(flows=[GREET, APPROVE], handlers=[greet, approval])
    async with engine:
        transport = httpx.ASGITransport(app=create_app(engine, auth))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def eventually(check: Callable[[], Awaitable[Any]], timeout_s: float = 10.0,
                     what: str = "the condition") -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail at the
    deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < deadline, f"{what} did not happen within {timeout_s}s"
        await asyncio.sleep(0.01)


async def until_status(client: httpx.AsyncClient, execution_id: str, status: str,
                       headers: dict[str, str], timeout_s: float = 10.0) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        response = await client.get(f"/v1/executions/{execution_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["status"] == status else None

    found: dict[str, Any] = await eventually(reached, timeout_s, f"{execution_id} {status}")
    return found
