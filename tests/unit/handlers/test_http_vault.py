"""``http`` headers and params taken from the engine's vault (``{"$vault": name}``):
the request carries the secret, nothing the engine keeps does (issue 10, finding 16)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import orjson
import pytest

from flowmonkey import DictVaultProvider, Engine, EngineOptions, EnvVaultProvider
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.config_check import schema_problems
from flowmonkey.handlers.http import CONFIG_SCHEMA, HttpHandler
from flowmonkey.model.flow import Flow
from tests.behaviour.flows import flow, step

MakeParams = Callable[..., HandlerParams]
TOKEN = "tok-3f9c1e77a0b24d5e"  # the header's secret
QUERY_KEY = "qk-81d2c4a6"  # the query parameter's secret
VAULT = {"payments-token": TOKEN, "payments-query-key": QUERY_KEY}


@dataclass
class RecordingServer:
    """Answers every request with JSON echoing its request line and Authorization
    header (as a careless API might), and keeps what it saw."""

    port: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, v in
                   (line.split(": ", 1) for line in lines[1:] if ": " in line)}
        seen = {"request": unquote(lines[0]), "authorization": headers.get("authorization", "")}
        self.seen.append(seen)
        self.raw.append(lines[0])
        body = orjson.dumps({"echo": seen})
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"X-Echo: " + seen["authorization"].encode() + b"\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    recording = RecordingServer()
    listening = await asyncio.start_server(recording.handle, "127.0.0.1", 0)
    recording.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield recording
        listening.close()
        await listening.wait_closed()


def call_flow(port: int) -> Flow:
    return Flow.model_validate(flow("charge", step("call", "http", output_key="response", config={
        "url": f"http://127.0.0.1:{port}/charges?order=7",
        "headers": {"Authorization": {"$vault": "payments-token"}, "Accept": "application/json"},
        "params": {"key": {"$vault": "payments-query-key"}, "mode": "live"},
        "retries": 0,
    })))


async def test_a_vault_header_reaches_the_server_and_nothing_the_engine_keeps(
        server: RecordingServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with Engine(flows=[call_flow(server.port)],
                      handlers=[HttpHandler(allow_private=True)],
                      vault=DictVaultProvider(VAULT),
                      options=EngineOptions(record_history=True)) as engine:
        created = await engine.create("charge", {"order": 7})
        done = await engine.wait(created.execution.id, timeout_s=10)
        assert done is not None
        assert done.status == "completed", done.error
        events = await engine.history(done.id)
        stored = await engine.projection.get(done.id)
        replayed = await engine.replay(done.id)

    # the request had the real values
    assert server.seen == [{"request": f"GET /charges?order=7&key={QUERY_KEY}&mode=live "
                                       "HTTP/1.1",
                            "authorization": TOKEN}]
    # the step's output had the echoed secrets replaced
    output = done.context["response"]
    assert output["json"] == {"echo": {
        "request": "GET /charges?order=7&key=[redacted]&mode=live HTTP/1.1",
        "authorization": "[redacted]"}}
    assert output["headers"]["x-echo"] == "[redacted]"
    # and no secret is anywhere the engine keeps or says anything
    assert events
    assert stored is not None
    assert replayed is not None
    kept = [e.model_dump_json() for e in events] + [
        stored.model_dump_json(), replayed.model_dump_json(), done.model_dump_json(),
        caplog.text]
    for text in kept:
        assert TOKEN not in text
        assert QUERY_KEY not in text
    # httpx logs each request's URL at INFO: there, the query's secret is replaced
    assert "key=[redacted]&mode=live" in caplog.text
    # the flow, as the engine keeps it, still holds the reference
    registered = engine.flows.get("charge")
    assert registered is not None
    assert registered.steps["call"].config["headers"]["Authorization"] == {
        "$vault": "payments-token"}


async def test_a_secret_the_vault_does_not_have_fails_the_step_naming_it(
        server: RecordingServer) -> None:
    async with Engine(flows=[call_flow(server.port)],
                      handlers=[HttpHandler(allow_private=True)],
                      vault=DictVaultProvider({"payments-token": TOKEN})) as engine:
        created = await engine.create("charge", {})
        done = await engine.wait(created.execution.id, timeout_s=10)
    assert done is not None
    assert done.error is not None
    assert done.status == "failed"
    assert done.error.code == "INPUT_ERROR"
    assert "payments-query-key" in done.error.message
    assert "config.params['key']" in done.error.message
    assert TOKEN not in done.model_dump_json()
    assert server.seen == []


async def test_without_a_vault_a_reference_fails_the_step(make_params: MakeParams) -> None:
    handler = HttpHandler(allow_private=True)
    result = await handler.execute(make_params(config={
        "url": "http://127.0.0.1:9/", "headers": {"X-Key": {"$vault": "k"}}}))
    assert result.error is not None
    assert result.error.code == "INPUT_ERROR"
    assert "no vault" in result.error.message


async def test_a_vault_that_fails_is_named_not_quoted(make_params: MakeParams) -> None:
    class BrokenVault:
        async def get_secret(self, name: str) -> str | None:
            raise RuntimeError(f"connection to vault failed with token {TOKEN}")

    params = make_params(config={"url": "http://127.0.0.1:9/",
                                 "headers": {"X-Key": {"$vault": "k"}}})
    params.vault = BrokenVault()
    result = await HttpHandler(allow_private=True).execute(params)
    assert result.error is not None
    assert result.error.code == "INPUT_ERROR"
    assert "RuntimeError" in result.error.message
    assert TOKEN not in result.error.message


def test_the_config_schema_takes_vault_references_and_refuses_other_objects() -> None:
    good = {"url": "https://example.com", "headers": {"A": {"$vault": "a"}, "B": "b", "C": 1},
            "params": {"p": {"$vault": "p"}, "q": True}}
    assert schema_problems("http", CONFIG_SCHEMA, good) == []
    bad = {"url": "https://example.com",
           "headers": {"A": {"$vault": "a", "extra": "s3cret"}, "B": {"$vault": ""}},
           "params": {"p": ["s3cret"]}}
    problems = schema_problems("http", CONFIG_SCHEMA, bad)
    assert [f for f, _ in problems] == ["config.headers.A", "config.headers.B",
                                        "config.params.p"]
    assert all("s3cret" not in m and "$vault" in m for _, m in problems)


async def test_env_vault_provider_reads_prefixed_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWMONKEY_SECRET_PAYMENTS_API_KEY", "v1")
    monkeypatch.setenv("MYAPP_PAYMENTS_API_KEY", "v2")
    assert await EnvVaultProvider().get_secret("payments/api-key") == "v1"
    assert await EnvVaultProvider().get_secret("payments.api_key") == "v1"
    assert await EnvVaultProvider(prefix="MYAPP_").get_secret("payments-api-key") == "v2"
    assert await EnvVaultProvider().get_secret("missing") is None
    assert "v1" not in repr(DictVaultProvider({"a": "v1"}))


async def test_a_secret_that_needs_encoding_is_scrubbed_in_every_form(
        make_params: MakeParams, server: RecordingServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    odd = "a b&c/d=é+1"
    params = make_params(config={"url": f"http://127.0.0.1:{server.port}/x",
                                 "params": {"q": {"$vault": "odd"}}})
    params.vault = DictVaultProvider({"odd": odd})
    result = await HttpHandler(allow_private=True).execute(params)
    assert result.outcome == "success", result.error
    target = server.raw[0].split(" ")[1]
    assert parse_qsl(urlsplit(target).query) == [("q", odd)]
    written = orjson.dumps(result.output).decode()
    for form in (odd, quote(odd, safe=""), quote_plus(odd), "a+b%26c%2Fd%3D%C3%A9%2B1"):
        assert form not in written, form
        assert form not in caplog.text, form
