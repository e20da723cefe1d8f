"""The ``http`` handler's connect-time guard, on a stub network backend (no network).

Each test asserts on what the network backend was asked to connect to: that, not the
URL, is where a request goes.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.http import ALLOW_PRIVATE_ENV, HttpHandler
from flowmonkey.handlers.safe_transport import AddressNotAllowed, GuardedNetworkBackend

MakeParams = Callable[..., HandlerParams]
PUBLIC_IP = "93.184.216.34"
OTHER_PUBLIC_IP = "93.184.216.35"
PUBLIC_IP6 = "2606:2800:220:1:248:1893:25c8:1946"


def http_response(status: int = 200, body: bytes = b"ok", *headers: str) -> bytes:
    reason = {200: "OK", 302: "Found"}.get(status, "Status")
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class StubStream(httpcore.AsyncNetworkStream):
    """Answers each request written to it with the backend's next scripted response."""

    def __init__(self, backend: StubBackend) -> None:
        self._backend = backend
        self.written = bytearray()
        self._answered = 0
        self._pending = bytearray()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.written += buffer
        # The tests send no request bodies, so a request ends with its header block.
        while self.written.count(b"\r\n\r\n") > self._answered:
            self._answered += 1
            self._pending += self._backend.script.pop(0)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        chunk = bytes(self._pending[:max_bytes])
        del self._pending[:max_bytes]
        return chunk

    async def aclose(self) -> None:
        pass

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:  # noqa: ASYNC109
        self._backend.tls_names.append(server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class StubBackend(httpcore.AsyncNetworkBackend):
    """Records every ``connect_tcp`` target; ``refuse`` makes those addresses fail to
    connect."""

    def __init__(self, *script: bytes, refuse: Iterable[str] = ()) -> None:
        self.script = list(script)
        self.refuse = set(refuse)
        self.connects: list[tuple[str, int]] = []
        self.streams: list[StubStream] = []
        self.tls_names: list[str | None] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError(f"connection to {host} refused")
        stream = StubStream(self)
        self.streams.append(stream)
        return stream

    async def sleep(self, seconds: float) -> None:
        pass


class ScriptedResolver:
    """Answers each lookup with the next answer (the last one repeats): a DNS server
    that rebinds."""

    def __init__(self, *answers: list[str] | OSError) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, OSError):
            raise answer
        return answer


def handler(resolver: ScriptedResolver, backend: StubBackend, **kwargs: Any) -> HttpHandler:
    return HttpHandler(resolver=resolver, network_backend=backend, **kwargs)


async def test_connects_to_the_address_it_checked(make_params: MakeParams) -> None:
    resolver = ScriptedResolver([PUBLIC_IP], ["127.0.0.1"])
    backend = StubBackend(http_response(body=b"hello"))
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "http://rebind.example:8080/path"}))
    assert result.outcome == "success"
    assert result.output["body"] == "hello"
    assert resolver.calls == [("rebind.example", 8080)]  # one lookup, no second answer
    assert backend.connects == [(PUBLIC_IP, 8080)]
    request_head = bytes(backend.streams[0].written).decode()
    assert request_head.startswith("GET /path HTTP/1.1\r\n")
    assert "Host: rebind.example:8080\r\n" in request_head


async def test_rebinding_on_redirect_never_reaches_the_private_address(
        make_params: MakeParams) -> None:
    # First lookup public, every later one private: the redirect's new connection
    # resolves again and is refused before any socket is opened.
    resolver = ScriptedResolver([PUBLIC_IP], ["10.0.0.5"])
    backend = StubBackend(
        http_response(302, b"", "Location: http://rebind.example/admin", "Connection: close"),
        http_response(body=b"secret"))
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "http://rebind.example/"}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"
    assert "10.0.0.5" in result.error.message
    assert ALLOW_PRIVATE_ENV in result.error.message
    assert len(resolver.calls) == 2
    assert backend.connects == [(PUBLIC_IP, 80)]


async def test_rebinding_on_retry_never_reaches_the_private_address(
        make_params: MakeParams) -> None:
    resolver = ScriptedResolver([PUBLIC_IP], ["169.254.169.254"])
    backend = StubBackend(http_response(), refuse=[PUBLIC_IP])
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "http://rebind.example/", "retries": 3}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"
    assert backend.connects == [(PUBLIC_IP, 80)]


@pytest.mark.parametrize(
    "answer",
    [
        ["10.1.2.3"],
        ["127.0.0.1"],
        ["0.0.0.0"],
        ["::"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["::ffff:169.254.169.254"],
        ["169.254.169.254"],
        ["fe80::1%eth0"],
        ["100.64.0.1"],
        ["224.0.0.1"],
        ["ff02::1"],
        ["240.0.0.1"],
        ["fd00::1"],
        [PUBLIC_IP, "127.0.0.1"],   # one private answer refuses the whole name
        [PUBLIC_IP6, "::1"],
    ],
)
async def test_names_resolving_to_non_public_addresses_are_refused(
        make_params: MakeParams, answer: list[str]) -> None:
    resolver = ScriptedResolver(answer)
    backend = StubBackend(http_response())
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "https://internal.example/"}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"
    assert "allow_private=True" in result.error.message
    assert backend.connects == []


async def test_tls_keeps_the_host_name_for_sni(make_params: MakeParams) -> None:
    resolver = ScriptedResolver([PUBLIC_IP6])
    backend = StubBackend(http_response())
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "https://api.example.com/v1"}))
    assert result.outcome == "success"
    assert backend.connects == [(PUBLIC_IP6, 443)]
    assert backend.tls_names == ["api.example.com"]
    assert "Host: api.example.com\r\n" in bytes(backend.streams[0].written).decode()


async def test_next_checked_address_is_tried_when_one_refuses(make_params: MakeParams) -> None:
    resolver = ScriptedResolver([PUBLIC_IP, OTHER_PUBLIC_IP, PUBLIC_IP])
    backend = StubBackend(http_response(), refuse=[PUBLIC_IP])
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "http://multi.example/"}))
    assert result.outcome == "success"
    assert backend.connects == [(PUBLIC_IP, 80), (OTHER_PUBLIC_IP, 80)]


async def test_unresolvable_name_is_a_retried_request_failure(make_params: MakeParams) -> None:
    resolver = ScriptedResolver(OSError("Name or service not known"))
    backend = StubBackend(http_response())
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "http://nowhere.example/", "retries": 2}))
    assert result.error is not None
    assert result.error.code == "REQUEST_FAILED"
    assert "could not resolve host 'nowhere.example'" in result.error.message
    assert len(resolver.calls) == 2
    assert backend.connects == []


async def test_allow_private_connects_to_private_addresses(make_params: MakeParams) -> None:
    resolver = ScriptedResolver(["10.1.2.3"])
    backend = StubBackend(http_response(body=b"internal"))
    result = await handler(resolver, backend, allow_private=True).execute(
        make_params(config={"url": "http://internal.example/"}))
    assert result.outcome == "success"
    assert result.output["body"] == "internal"
    assert backend.connects == [("10.1.2.3", 80)]


async def test_env_allow_private_connects_to_private_addresses(
        make_params: MakeParams, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "true")
    resolver = ScriptedResolver(["::ffff:10.9.8.7"])
    backend = StubBackend(http_response())
    result = await handler(resolver, backend).execute(
        make_params(config={"url": "http://internal.example:81/"}))
    assert result.outcome == "success"
    assert backend.connects == [("::ffff:10.9.8.7", 81)]


async def test_literal_addresses_are_not_resolved() -> None:
    resolver = ScriptedResolver(["10.0.0.1"])
    guarded = GuardedNetworkBackend(resolver)
    assert await guarded.checked_addresses(PUBLIC_IP, 80) == [PUBLIC_IP]
    assert await guarded.checked_addresses(PUBLIC_IP6, 443) == [PUBLIC_IP6]
    assert resolver.calls == []


async def test_backend_refuses_unix_sockets() -> None:
    guarded = GuardedNetworkBackend(ScriptedResolver([PUBLIC_IP]), allow_private=True)
    with pytest.raises(AddressNotAllowed, match="non-public"):
        await guarded.connect_unix_socket("/var/run/docker.sock")
