from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.http import ALLOW_PRIVATE_ENV, HttpHandler, is_public_address

MakeParams = Callable[..., HandlerParams]


class Recorder:
    """A MockTransport handler that records requests and answers from a script."""

    def __init__(self, *answers: httpx.Response | Exception | float) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, float):
            await asyncio.sleep(answer)
            return httpx.Response(200, text="late")
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_handler(recorder: Recorder, **kwargs: Any) -> HttpHandler:
    """A handler on a mock transport: it checks URLs but resolves no names, which
    ``test_http_guarded_transport.py`` covers on the real transport."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return HttpHandler(client=client, **kwargs)


async def test_success_json(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(200, json={"ok": True}, headers={"X-Trace": "abc"}))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/v1/thing"}))
    assert result.outcome == "success"
    out = result.output
    assert out["status"] == 200
    assert out["statusText"] == "OK"
    assert out["headers"]["x-trace"] == "abc"
    assert out["headers"]["content-type"] == "application/json"
    assert json.loads(out["body"]) == {"ok": True}
    assert out["json"] == {"ok": True}
    assert isinstance(out["durationMs"], int)
    assert recorder.requests[0].method == "GET"


async def test_text_response_has_no_json(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(200, text="hello"))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/"}))
    assert result.output["body"] == "hello"
    assert result.output["json"] is None


async def test_bodies_and_headers_are_sent(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(201, json={}))
    handler = make_handler(recorder)
    await handler.execute(make_params(config={
        "url": "https://api.example.com/", "method": "post", "body": {"a": 1},
        "headers": {"Authorization": "Bearer x", "X-N": 5}}))
    await handler.execute(make_params(config={
        "url": "https://api.example.com/", "method": "PUT", "body": "raw text"}))
    first, second = recorder.requests
    assert first.method == "POST"
    assert json.loads(first.content) == {"a": 1}
    assert first.headers["content-type"] == "application/json"
    assert first.headers["authorization"] == "Bearer x"
    assert first.headers["x-n"] == "5"
    assert second.content == b"raw text"


async def test_non_2xx_is_http_error_and_not_retried(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(404, text="nope"))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/missing"}))
    assert result.outcome == "failure"
    assert result.error is not None
    assert result.error.code == "HTTP_ERROR"
    assert result.error.message == "HTTP 404 Not Found"
    assert result.error.details["status"] == 404
    assert result.error.details["attempt"] == 1
    assert len(recorder.requests) == 1


async def test_transport_errors_are_retried(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.ConnectError("refused"), httpx.ConnectError("refused"),
                        httpx.Response(200, text="ok"))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/", "retries": 3}))
    assert result.outcome == "success"
    assert len(recorder.requests) == 3


async def test_request_failed_after_all_attempts(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.ConnectError("connection refused"))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/", "retries": 2}))
    assert result.error is not None
    assert result.error.code == "REQUEST_FAILED"
    assert "connection refused" in result.error.message
    assert len(recorder.requests) == 2


async def test_zero_retries_still_sends_once(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.ConnectError("down"))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/", "retries": 0}))
    assert result.error is not None
    assert result.error.code == "REQUEST_FAILED"
    assert len(recorder.requests) == 1


async def test_timeout_applies_per_attempt(make_params: MakeParams) -> None:
    recorder = Recorder(5.0)
    result = await make_handler(recorder).execute(make_params(
        config={"url": "https://api.example.com/", "timeout": 100, "retries": 1}))
    assert result.error is not None
    assert result.error.code == "REQUEST_FAILED"
    assert "timed out after 100 ms" in result.error.message


async def test_abort_cancels_request(make_params: MakeParams) -> None:
    recorder = Recorder(5.0)
    abort = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, abort.set)
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/"}, abort=abort))
    assert result.error is not None
    assert result.error.code == "ABORTED"


async def test_abort_during_backoff(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.ConnectError("down"))
    abort = asyncio.Event()
    asyncio.get_running_loop().call_later(0.02, abort.set)
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/", "retries": 10}, abort=abort))
    assert result.error is not None
    assert result.error.code == "ABORTED"
    assert len(recorder.requests) == 1


async def test_already_aborted_sends_nothing(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(200))
    abort = asyncio.Event()
    abort.set()
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/"}, abort=abort))
    assert result.error is not None
    assert result.error.code == "ABORTED"
    assert recorder.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/admin",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:5432/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://100.64.0.1/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://app.localhost/",
    ],
)
async def test_private_addresses_are_refused(make_params: MakeParams, url: str) -> None:
    recorder = Recorder(httpx.Response(200))
    result = await make_handler(recorder).execute(make_params(config={"url": url}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"
    assert ALLOW_PRIVATE_ENV in result.error.message
    assert "allow_private=True" in result.error.message
    assert recorder.requests == []


async def test_allow_private_lets_it_through(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(200, text="local"))
    result = await make_handler(recorder, allow_private=True).execute(
        make_params(config={"url": "http://127.0.0.1:8080/health"}))
    assert result.outcome == "success"
    assert result.output["body"] == "local"


async def test_env_allows_private(make_params: MakeParams, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    recorder = Recorder(httpx.Response(200))
    result = await make_handler(recorder).execute(make_params(config={"url": "http://10.0.0.1/"}))
    assert result.outcome == "success"


async def test_step_config_cannot_allow_private(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(200))
    result = await make_handler(recorder).execute(make_params(
        config={"url": "http://127.0.0.1/", "allowPrivate": True, "allow_private": True}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://x/"])
async def test_other_schemes_are_refused(make_params: MakeParams, url: str) -> None:
    recorder = Recorder(httpx.Response(200))
    result = await make_handler(recorder, allow_private=True).execute(
        make_params(config={"url": url}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"


async def test_redirect_to_private_host_is_refused(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(302, headers={"Location": "http://169.254.169.254/"}))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/"}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"
    assert len(recorder.requests) == 1


async def test_public_redirect_is_followed(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(301, headers={"Location": "https://other.example/new"}),
                        httpx.Response(200, text="moved"))
    result = await make_handler(recorder).execute(
        make_params(config={"url": "https://api.example.com/old"}))
    assert result.output["body"] == "moved"
    assert str(recorder.requests[1].url) == "https://other.example/new"


async def test_response_size_is_capped(make_params: MakeParams) -> None:
    recorder = Recorder(httpx.Response(200, content=b"x" * 100))
    result = await make_handler(recorder, max_response_bytes=10).execute(
        make_params(config={"url": "https://api.example.com/"}))
    assert result.error is not None
    assert result.error.code == "RESPONSE_TOO_LARGE"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "config.url is required"),
        ({"url": "https://a.example/", "method": "BREW"}, "config.method"),
        ({"url": "https://a.example/", "timeout": 5}, "config.timeout"),
        ({"url": "https://a.example/", "retries": 11}, "config.retries"),
        ({"url": "https://a.example/", "headers": {"X": {"a": 1}}}, "config.headers"),
    ],
)
async def test_invalid_config(make_params: MakeParams, config: dict[str, Any],
                              fragment: str) -> None:
    recorder = Recorder(httpx.Response(200))
    result = await make_handler(recorder).execute(make_params(config=config))
    assert result.error is not None
    assert result.error.code == "INPUT_ERROR"
    assert fragment in result.error.message


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("100.64.0.1", False),
        ("192.168.1.1", False),
        ("224.0.0.1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("2002:7f00:1::", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b::808:808", True),
        ("64:ff9b:1::808:808", False),
        ("::", False),
        ("0.0.0.0", False),
        ("100.127.255.254", False),
        ("169.254.169.254", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("::7f00:1", False),
        ("192.0.0.8", False),
        ("198.18.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("ff0e::1", False),
        ("fd00:ec2::254", False),
        ("2001:db8::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public
