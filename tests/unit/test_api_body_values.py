"""Every request body value the log (orjson) or PostgreSQL cannot carry is a 422 that
names the field, on every route that takes a body (issue 10, finding 15): lone
surrogates in values and keys, NUL characters, nesting past the context limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from flowmonkey import ContextLimits, Engine, EngineOptions
from flowmonkey.api import create_app
from tests.unit.api_support import (
    APPROVE,
    AUTH,
    GREET,
    KEY_A,
    approval,
    bearer,
    greet,
    until_status,
)

A = {**bearer(KEY_A), "content-type": "application/json"}
SURROGATE = "\\ud800"  # as it is written in JSON: it decodes to a lone surrogate
DEEP = 253  # the report's metadata depth: past orjson's encoder at 254 with the command


def nested(depth: int) -> str:
    """JSON text of objects ``depth`` levels deep: {"a":{"a":...{}}}."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    engine = Engine(flows=[GREET, APPROVE], handlers=[greet, approval])
    async with engine:
        # an unexpected exception must be seen as the 500 a client gets, not raised
        transport = httpx.ASGITransport(app=create_app(engine, AUTH),
                                        raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            yield c


async def post(client: httpx.AsyncClient, url: str, body: str) -> httpx.Response:
    return await client.post(url, headers=A, content=body.encode())


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [p["field"] for p in error["details"]] == [field], error
    assert field in error["message"]


async def no_executions(client: httpx.AsyncClient) -> bool:
    listed = await client.get("/v1/executions", headers=A)
    items: list[Any] = listed.json()["items"]
    return items == []


CREATE_CASES = [
    # (body fields after flowId, the field the answer must name)
    (f'"context": {{"x": "{SURROGATE}"}}', "context.x"),
    (f'"context": {{"{SURROGATE}": 1}}', "context.\\ud800"),
    (f'"context": {{"list": [1, {{"k{SURROGATE}": 2}}]}}', "context.list[1].k\\ud800"),
    (f'"metadata": {{"note": "{SURROGATE}"}}', "metadata.note"),
    (f'"metadata": {{"{SURROGATE}": "x"}}', "metadata.\\ud800"),
    (f'"metadata": {nested(DEEP)}', "metadata" + ".a" * 33),
    (f'"context": {{"deep": {nested(DEEP)}}}', "context.deep" + ".a" * 32),
    ('"metadata": {"x": "a\\u0000b"}', "metadata.x"),
    ('"context": {"x\\u0000": 1}', "context.x\\u0000"),
    (f'"idempotencyKey": "{SURROGATE}"', "idempotencyKey"),
    ('"idempotencyKey": "a\\u0000b"', "idempotencyKey"),
    (f'"{SURROGATE}": 1', "\\ud800"),
    (f'"timeout": {{"{SURROGATE}": 1}}', "timeout.\\ud800"),
]


@pytest.mark.parametrize(("fields", "field"), CREATE_CASES,
                         ids=[f for _, f in CREATE_CASES])
async def test_create_refuses_an_unstorable_value_naming_it(
        client: httpx.AsyncClient, fields: str, field: str) -> None:
    response = await post(client, "/v1/executions", f'{{"flowId": "greet", {fields}}}')
    assert_refused(response, field)
    assert await no_executions(client)


async def test_nesting_up_to_the_context_limit_is_accepted(client: httpx.AsyncClient) -> None:
    # the context's values may nest 32 levels (ContextLimits.max_depth), metadata too
    deepest = nested(32)
    response = await post(client, "/v1/executions",
                          f'{{"flowId": "greet", "context": {{"v": {deepest}}}, '
                          f'"metadata": {{"v": {deepest}}}}}')
    assert response.status_code == 201, response.text
    too_deep = await post(client, "/v1/executions",
                          f'{{"flowId": "greet", "metadata": {{"v": {nested(33)}}}}}')
    assert_refused(too_deep, "metadata.v" + ".a" * 32)


async def test_the_depth_limit_is_the_serving_engines() -> None:
    engine = Engine(flows=[GREET], handlers=[greet],
                    options=EngineOptions(context_limits=ContextLimits(max_depth=3)))
    async with engine:
        transport = httpx.ASGITransport(app=create_app(engine, AUTH))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            fits = await post(client, "/v1/executions",
                              f'{{"flowId": "greet", "metadata": {{"v": {nested(3)}}}}}')
            assert fits.status_code == 201, fits.text
            deeper = await post(client, "/v1/executions",
                                f'{{"flowId": "greet", "metadata": {{"v": {nested(4)}}}}}')
            assert_refused(deeper, "metadata.v.a.a.a")


async def test_a_body_deeper_than_the_json_reader_goes_is_a_422(
        client: httpx.AsyncClient) -> None:
    response = await post(client, "/v1/executions",
                          '{"flowId": "greet", "context": {"x": ' + "[" * 5000 + "]" * 5000
                          + "}}")
    assert_refused(response, "(body)")


async def waiting_execution(client: httpx.AsyncClient) -> tuple[str, str]:
    created = await client.post("/v1/executions", headers=A, json={"flowId": "approve"})
    assert created.status_code == 201, created.text
    execution_id: str = created.json()["execution"]["id"]
    waiting = await until_status(client, execution_id, "waiting", A)
    return execution_id, waiting["resumeToken"]


RESUME_CASES = [
    (f'"data": "{SURROGATE}"', "data"),
    (f'"data": {{"{SURROGATE}": true}}', "data.\\ud800"),
    (f'"data": [{{"ok": "{SURROGATE}"}}]', "data[0].ok"),
    (f'"data": {nested(DEEP)}', "data" + ".a" * 33),
    ('"data": {"x": "\\u0000"}', "data.x"),
]


@pytest.mark.parametrize(("fields", "field"), RESUME_CASES,
                         ids=[f for _, f in RESUME_CASES])
async def test_resume_refuses_an_unstorable_value_naming_it(
        client: httpx.AsyncClient, fields: str, field: str) -> None:
    execution_id, token = await waiting_execution(client)
    response = await post(client, f"/v1/executions/{execution_id}/resume",
                          f'{{"token": {orjson.dumps(token).decode()}, {fields}}}')
    assert_refused(response, field)
    # refused as a whole: the token still works
    resumed = await client.post(f"/v1/executions/{execution_id}/resume", headers=A,
                                json={"token": token, "data": {"ok": True}})
    assert resumed.status_code == 200, resumed.text


CANCEL_CASES = [
    (f'"reason": "{SURROGATE}"', "reason"),
    (f'"reason": {{"{SURROGATE}": 1}}', "reason.\\ud800"),
    (f'"{SURROGATE}": 1', "\\ud800"),
    (f'"reason": {nested(DEEP)}', "reason" + ".a" * 33),
]


@pytest.mark.parametrize(("fields", "field"), CANCEL_CASES,
                         ids=[f for _, f in CANCEL_CASES])
async def test_cancel_refuses_an_unstorable_value_naming_it(
        client: httpx.AsyncClient, fields: str, field: str) -> None:
    execution_id, _ = await waiting_execution(client)
    response = await post(client, f"/v1/executions/{execution_id}/cancel", f"{{{fields}}}")
    assert_refused(response, field)
    got = (await client.get(f"/v1/executions/{execution_id}", headers=A)).json()
    assert got["status"] == "waiting"
