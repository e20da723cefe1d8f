"""The HTTP API's executions endpoints over an embedded engine: start, read, history,
state at an event, pagination, resume and cancel, with the engine's errors mapped."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from flowmonkey import Engine
from flowmonkey.api import ApiAuth, create_app
from flowmonkey.errors import FlowMonkeyError, LogError, WaitTimeout
from flowmonkey.log.base import OutRecord
from flowmonkey.log.embedded import EmbeddedLog
from flowmonkey.model.flow import Flow
from tests.behaviour.flows import flow, step
from tests.unit.api_support import (
    ADMIN,
    GREET,
    ISO_UTC,
    KEY_A,
    KEYS,
    api_client,
    bearer,
    greet,
    until_status,
)

A = bearer(KEY_A)


async def test_create_get_wait_history_and_state_at_an_event() -> None:
    async with api_client() as client:
        created = await client.post("/v1/executions", headers=A,
                                    json={"flowId": "greet", "context": {"name": "Ada"}})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["created"] is True
        assert body["idempotencyHit"] is False
        execution_id = body["execution"]["id"]
        assert body["execution"]["flowId"] == "greet"
        assert body["execution"]["tenantId"] == "tenant-a"
        assert created.headers["location"] == f"/v1/executions/{execution_id}"

        done = await until_status(client, execution_id, "completed", A)
        assert done["context"] == {"name": "Ada", "greeting": {"hello": "Ada"}}

        history = await client.get(f"/v1/executions/{execution_id}/events", headers=A)
        assert history.status_code == 200
        events = history.json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[0]["type"] == "execution.created"
        assert events[-1]["type"] == "execution.completed"
        assert events[0]["executionId"] == execution_id
        # one key style and one timestamp format, event data included
        assert ISO_UTC.match(events[0]["timestamp"])
        assert events[0]["data"]["flowId"] == "greet"
        assert events[0]["data"]["context"] == {"name": "Ada"}
        assert ISO_UTC.match(done["createdAt"])
        assert ISO_UTC.match(done["updatedAt"])

        first = await client.get(f"/v1/executions/{execution_id}/state",
                                 params={"seq": 1}, headers=A)
        assert first.status_code == 200
        assert first.json()["seq"] == 1
        assert first.json()["status"] != "completed"
        assert first.json()["context"] == {"name": "Ada"}
        past = await client.get(f"/v1/executions/{execution_id}/state",
                                params={"seq": len(events) + 1}, headers=A)
        assert past.status_code == 404
        assert past.json()["error"]["code"] == "EVENT_NOT_FOUND"


async def test_an_idempotency_key_returns_the_first_execution_with_200() -> None:
    async with api_client() as client:
        request = {"flowId": "greet", "idempotencyKey": "order-17"}
        first = await client.post("/v1/executions", headers=A, json=request)
        again = await client.post("/v1/executions", headers=A, json=request)
        assert first.status_code == 201
        assert again.status_code == 200
        assert again.json()["idempotencyHit"] is True
        assert again.json()["created"] is False
        assert again.json()["execution"]["id"] == first.json()["execution"]["id"]


async def test_an_idempotency_hit_on_another_flows_execution_is_a_conflict() -> None:
    # flow "greet" + key "x/k" and flow "greet/x" + key "k" share the kernel's scope
    slashed = flow("greet/x", step("hello", "greet", output_key="greeting"))
    engine = Engine(flows=[GREET, slashed], handlers=[greet])
    async with api_client(engine=engine) as client:
        first = await client.post("/v1/executions", headers=A,
                                  json={"flowId": "greet", "idempotencyKey": "x/k"})
        assert first.status_code == 201
        other = await client.post("/v1/executions", headers=A,
                                  json={"flowId": "greet/x", "idempotencyKey": "k"})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_CONFLICT"


async def test_the_list_pages_with_a_cursor_and_filters() -> None:
    async with api_client() as client:
        ids = []
        for n in range(5):
            created = await client.post("/v1/executions", headers=A,
                                        json={"flowId": "greet", "context": {"n": n}})
            ids.append(created.json()["execution"]["id"])
        await client.post("/v1/executions", headers=A, json={"flowId": "approve"})
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"flowId": "greet", "limit": 2}
            if cursor is not None:
                params["cursor"] = cursor
            page = await client.get("/v1/executions", params=params, headers=A)
            assert page.status_code == 200, page.text
            seen += [e["id"] for e in page.json()["items"]]
            pages += 1
            cursor = page.json()["nextCursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids)
        assert len(seen) == len(set(seen))
        assert pages == 3
        waiting = await until_status(client, (await client.get(
            "/v1/executions", params={"flowId": "approve"}, headers=A)).json()["items"][0]["id"],
            "waiting", A)
        by_status = await client.get("/v1/executions", params={"status": "waiting"}, headers=A)
        assert [e["id"] for e in by_status.json()["items"]] == [waiting["id"]]


async def test_a_bad_cursor_or_status_is_refused_clearly() -> None:
    async with api_client() as client:
        cursor = await client.get("/v1/executions", params={"cursor": "nope"}, headers=A)
        assert cursor.status_code == 400
        assert cursor.json()["error"]["code"] == "INVALID_CURSOR"
        # well formed, but its time fits no bigint: PostgreSQL would fail, not page
        beyond = base64.urlsafe_b64encode(b'[9223372036854775808,"x"]').decode()
        far = await client.get("/v1/executions", params={"cursor": beyond}, headers=A)
        assert far.status_code == 400
        assert far.json()["error"]["code"] == "INVALID_CURSOR"
        status = await client.get("/v1/executions", params={"status": "sleeping"}, headers=A)
        assert status.status_code == 422
        assert "status" in status.json()["error"]["message"]


async def test_resume_with_the_token_then_a_used_and_a_wrong_token() -> None:
    async with api_client() as client:
        created = await client.post("/v1/executions", headers=A, json={"flowId": "approve"})
        execution_id = created.json()["execution"]["id"]
        waiting = await until_status(client, execution_id, "waiting", A)
        token = waiting["resumeToken"]
        assert token

        wrong = await client.post(f"/v1/executions/{execution_id}/resume", headers=A,
                                  json={"token": "not-the-token", "data": {}})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "INVALID_TOKEN"

        resumed = await client.post(f"/v1/executions/{execution_id}/resume", headers=A,
                                    json={"token": token, "data": {"approved": True}})
        assert resumed.status_code == 200, resumed.text
        done = await until_status(client, execution_id, "completed", A)
        assert done["context"]["answer"] == {"approved": True}

        reused = await client.post(f"/v1/executions/{execution_id}/resume", headers=A,
                                   json={"token": token})
        assert reused.status_code == 409
        assert reused.json()["error"]["code"] == "TOKEN_USED"


async def test_cancel_a_waiting_execution_then_cancelling_it_again_is_a_conflict() -> None:
    async with api_client() as client:
        created = await client.post("/v1/executions", headers=A, json={"flowId": "approve"})
        execution_id = created.json()["execution"]["id"]
        await until_status(client, execution_id, "waiting", A)

        cancelled = await client.post(f"/v1/executions/{execution_id}/cancel", headers=A,
                                      json={"reason": "changed my mind"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["cancelled"] is True
        assert cancelled.json()["tokensInvalidated"] == 1
        await until_status(client, execution_id, "cancelled", A)

        again = await client.post(f"/v1/executions/{execution_id}/cancel", headers=A)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "NOT_CANCELLABLE"


async def test_unknown_ids_are_404_everywhere() -> None:
    async with api_client() as client:
        for method, path in [("GET", "/v1/executions/nope"),
                             ("GET", "/v1/executions/nope/events"),
                             ("GET", "/v1/executions/nope/state?seq=1"),
                             ("POST", "/v1/executions/nope/cancel")]:
            response = await client.request(method, path, headers=A)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "EXECUTION_NOT_FOUND", path
        resume = await client.post("/v1/executions/nope/resume", headers=A,
                                   json={"token": "t"})
        assert resume.status_code == 404
        unknown_flow = await client.post("/v1/executions", headers=A,
                                         json={"flowId": "no-such-flow"})
        assert unknown_flow.status_code == 404
        assert unknown_flow.json()["error"]["code"] == "FLOW_NOT_FOUND"
        route = await client.get("/v2/nothing", headers=A)
        assert route.status_code == 404
        assert route.json()["error"]["code"] == "NOT_FOUND"


async def test_a_bad_body_is_422_naming_the_field() -> None:
    async with api_client() as client:
        missing = await client.post("/v1/executions", headers=A, json={"context": {}})
        assert missing.status_code == 422
        error = missing.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert "flowId" in error["message"]
        typo = await client.post("/v1/executions", headers=A,
                                 json={"flowId": "greet", "contxt": {}})
        assert typo.status_code == 422
        assert "contxt" in typo.json()["error"]["message"]
        wrong_type = await client.post("/v1/executions", headers=A,
                                       json={"flowId": "greet", "context": [1, 2]})
        assert wrong_type.status_code == 422
        assert "context" in wrong_type.json()["error"]["message"]
        not_json = await client.post("/v1/executions", headers={**A, "content-type":
                                                                "application/json"},
                                     content=b"{nope")
        assert not_json.status_code == 422
        assert not_json.json()["error"]["message"] == \
            "invalid request: (body): not valid JSON at character 1"
        nested = b'{"flowId": "greet", "context": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
        too_deep = await client.post("/v1/executions", content=nested,
                                     headers={**A, "content-type": "application/json"})
        # deeper than the JSON reader goes: too deep, like any body past the limit
        assert too_deep.status_code == 422
        assert too_deep.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_a_body_over_the_bound_is_413_whether_declared_or_streamed() -> None:
    engine = Engine(flows=[GREET], handlers=[greet])
    async with engine:
        app = create_app(engine, ApiAuth(KEYS), max_body_bytes=1000)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            declared = await client.post("/v1/executions", headers=A, json={
                "flowId": "greet", "context": {"a": "x" * 2000}})

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"flowId": "greet", "context": {"a": "'
                for _ in range(10):
                    yield b"x" * 500  # no Content-Length: the read itself must stop
                yield b'"}}'

            streamed = await client.post("/v1/executions", content=chunks(),
                                         headers={**A, "content-type": "application/json"})
            small = await client.post("/v1/executions", headers=A, json={"flowId": "greet"})
            listed = await client.get("/v1/executions", headers=A)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["error"] == {"code": "BODY_TOO_LARGE", "message":
                                            "the request body is over 1000 bytes"}
    assert small.status_code == 201
    assert len(listed.json()["items"]) == 1


@pytest.mark.parametrize(("body", "field"), [
    (b'{"flowId": "greet", "context": {"n": 1e999}}', "context.n"),
    (b'{"flowId": "greet", "context": {"n": NaN}}', "context.n"),
    (b'{"flowId": "greet", "context": {"n": [0, 100000000000000000000]}}', "context.n[1]"),
    (b'{"flowId": "greet", "idempotencyKey": "k", "idempotencyWindowMs": 1e400}', None),
    (b'{"flowId": "greet", "idempotencyKey": "k", '
     b'"idempotencyWindowMs": 100000000000000000000}', "idempotencyWindowMs"),
    (b'{"flowId": "greet", "timeout": {"executionTimeoutMs": 100000000000000000000}}',
     "timeout.executionTimeoutMs"),
])
async def test_a_number_the_log_cannot_carry_is_422_not_a_500(body: bytes,
                                                               field: str | None) -> None:
    async with api_client() as client:
        response = await client.post("/v1/executions", content=body,
                                     headers={**A, "content-type": "application/json"})
        listed = await client.get("/v1/executions", headers=A)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    if field is not None:
        assert field in response.json()["error"]["message"]
    assert listed.json()["items"] == []


async def test_a_nul_character_is_refused_where_postgresql_could_not_store_it() -> None:
    async with api_client() as client:
        in_value = await client.post("/v1/executions", headers=A,
                                     json={"flowId": "greet", "context": {"a": ["x\x00"]}})
        in_name = await client.post("/v1/executions", headers=A,
                                    json={"flowId": "greet", "context": {"a\x00": 1}})
        in_reason = await client.post("/v1/executions/x/cancel", headers=A,
                                      json={"reason": "\x00"})
        in_path = await client.get("/v1/executions/x%00y", headers=A)
        in_query = await client.get("/v1/executions", params={"flowId": "g\x00"}, headers=A)
        listed = await client.get("/v1/executions", headers=A)
    for response in (in_value, in_name, in_reason):
        assert response.status_code == 422, response.text
        assert "NUL character" in response.json()["error"]["message"]
    assert "context.a[0]" in in_value.json()["error"]["message"]
    for response in (in_path, in_query):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "INVALID_REQUEST"
    assert listed.json()["items"] == []


async def test_resume_data_the_log_cannot_carry_is_422() -> None:
    async with api_client() as client:
        response = await client.post("/v1/executions/any/resume", content=b'{"token": "t", '
                                     b'"data": {"n": -100000000000000000000}}',
                                     headers={**A, "content-type": "application/json"})
    assert response.status_code == 422
    assert "data.n" in response.json()["error"]["message"]


async def test_a_context_over_the_engines_limit_is_422() -> None:
    async with api_client() as client:
        response = await client.post("/v1/executions", headers=A, json={
            "flowId": "greet", "context": {"big": "x" * (1024 * 1024 + 1)}})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "CONTEXT_VALUE_TOO_LARGE"


@pytest.mark.parametrize(("error", "status", "code"), [
    (WaitTimeout("no answer to start for 'x' within 30s; are the processors running?"),
     504, "WAIT_TIMEOUT"),
    (LogError("Kafka failed while publishing: broker-7.internal:9093 refused"),
     503, "LOG_ERROR"),
    (FlowMonkeyError("decoder state at broker-7.internal:9093 is broken"),
     500, "INTERNAL_ERROR"),
])
async def test_engine_failures_map_to_5xx_and_only_a_timeout_keeps_its_message(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        error: FlowMonkeyError, status: int, code: str) -> None:
    engine = Engine(flows=[GREET], handlers=[greet])

    async def failing(*args: object, **kwargs: object) -> None:
        raise error

    async with api_client(engine=engine) as client:
        for name in ("create", "resume", "cancel"):
            monkeypatch.setattr(engine, name, failing)
        responses = [
            await client.post("/v1/executions", headers=A, json={"flowId": "greet"}),
            await client.post("/v1/executions/x/resume", headers=A, json={"token": "t"}),
            await client.post("/v1/executions/x/cancel", headers=A)]
    for response in responses:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        if status == 504:
            assert response.json()["error"]["message"] == error.message
        else:
            assert "broker-7" not in response.text
            assert "broker-7" in caplog.text  # the operator still sees why


async def test_flows_are_listed_and_shown() -> None:
    async with api_client() as client:
        listed = await client.get("/v1/flows", headers=A)
        assert listed.status_code == 200
        assert [(f["id"], f["version"], f["status"]) for f in listed.json()["items"]] == [
            ("approve", "1.0.0", "published"), ("greet", "1.0.0", "published")]
        shown = await client.get("/v1/flows/approve", headers=A)
        assert shown.status_code == 200
        assert shown.json()["flow"]["initialStepId"] == "ask"
        assert shown.json()["versions"] == ["1.0.0"]
        missing = await client.get("/v1/flows/nope", headers=A)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "FLOW_NOT_FOUND"


async def test_health_openapi_and_docs() -> None:
    async with api_client() as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        spec = await client.get("/openapi.json")
        assert spec.status_code == 200
        paths = spec.json()["paths"]
        for path in ("/v1/executions", "/v1/executions/{execution_id}/resume",
                     "/v1/flows/{flow_id}", "/v1/tables/{table_id}/rows", "/health"):
            assert path in paths, path
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()


async def test_health_is_503_with_the_reason_when_the_engine_is_stopped() -> None:
    transport = httpx.ASGITransport(app=create_app(Engine(), ApiAuth(KEYS)))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        health = await client.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "reason": "the engine is not started"}


async def test_health_is_503_when_a_processor_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(flows=[GREET], handlers=[greet])
    async with api_client(engine=engine) as client:
        monkeypatch.setattr(engine, "processor_failure",
                            lambda: RuntimeError("disk full at /secret/path"))
        health = await client.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable",
                             "reason": "a processor stopped: RuntimeError"}


async def test_an_admin_key_lists_every_tenant() -> None:
    async with api_client() as client:
        await client.post("/v1/executions", headers=A, json={"flowId": "greet"})
        await client.post("/v1/executions", headers=bearer(ADMIN, "tenant-z"),
                          json={"flowId": "greet"})
        everything = await client.get("/v1/executions", headers=bearer(ADMIN))
        assert sorted(e["tenantId"] for e in everything.json()["items"]) == [
            "tenant-a", "tenant-z"]


async def test_a_flow_published_after_start_is_found_by_an_engine_without_processors() -> None:
    engine = Engine(log=EmbeddedLog(partitions=1), run_processors=False)
    async with api_client(engine=engine) as client:
        before = await client.get("/v1/flows", headers=A)
        assert before.json()["items"] == []
        # another process (a processor deployed later) publishes its flow
        flow = Flow.parse(GREET)
        await engine.log.append([OutRecord(engine.topics.flows,
                                           flow.model_dump_json(by_alias=True).encode(),
                                           key=flow.ref.encode(), partition=0)])
        found = await client.get("/v1/flows/greet", headers=A)
        assert found.status_code == 200, found.text
        assert found.json()["flow"]["id"] == "greet"
