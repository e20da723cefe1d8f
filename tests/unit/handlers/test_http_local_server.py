"""The ``http`` handler end to end against servers on 127.0.0.1: the guarded transport
connects to the resolved address while the request keeps the URL's host (``Host``
header, TLS server name and certificate check)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from flowmonkey.handlers.base import HandlerParams
from flowmonkey.handlers.http import HttpHandler
from flowmonkey.handlers.safe_transport import GuardedTransport

MakeParams = Callable[..., HandlerParams]
NAME = "service.test"


@dataclass
class EchoServer:
    """Answers every request with a JSON echo of its request line and Host header."""

    port: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        seen = {"request": lines[0], "host": headers.get("Host", "")}
        self.seen.append(seen)
        body = orjson.dumps(seen)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()


async def serve(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[EchoServer]:
    echo = EchoServer()
    server = await asyncio.start_server(echo.handle, "127.0.0.1", 0, ssl=ssl_context)
    echo.port = server.sockets[0].getsockname()[1]
    async with server:
        yield echo
        server.close()
        await server.wait_closed()


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    async for echo in serve():
        yield echo


async def to_loopback(host: str, port: int) -> list[str]:
    assert host == NAME
    return ["127.0.0.1"]


async def test_allow_private_reaches_local_server_with_host_header(
        make_params: MakeParams, echo_server: EchoServer) -> None:
    handler = HttpHandler(allow_private=True, resolver=to_loopback)
    result = await handler.execute(make_params(
        config={"url": f"http://{NAME}:{echo_server.port}/status?x=1"}))
    assert result.outcome == "success", result.error
    assert result.output["json"] == {"request": "GET /status?x=1 HTTP/1.1",
                                     "host": f"{NAME}:{echo_server.port}"}


async def test_without_allow_private_local_server_gets_no_connection(
        make_params: MakeParams, echo_server: EchoServer) -> None:
    handler = HttpHandler(resolver=to_loopback)
    result = await handler.execute(make_params(
        config={"url": f"http://{NAME}:{echo_server.port}/"}))
    assert result.error is not None
    assert result.error.code == "URL_NOT_ALLOWED"
    assert echo_server.seen == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``NAME`` only (not for 127.0.0.1)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a test certificate: install "
                    "it (Debian: apt-get install openssl)", pytrace=False)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={NAME}", "-addext",
         f"subjectAltName=DNS:{NAME}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    return cert, key


async def test_tls_verifies_the_certificate_against_the_url_host(
        make_params: MakeParams, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    async for echo in serve(server_tls):
        transport = GuardedTransport(to_loopback, allow_private=True, verify=client_tls)
        async with httpx.AsyncClient(transport=transport) as client:
            handler = HttpHandler(allow_private=True, client=client)
            by_name = await handler.execute(make_params(
                config={"url": f"https://{NAME}:{echo.port}/secure"}))
            # The same server by address: the certificate does not name 127.0.0.1, so
            # this fails, which shows the check above was made against the name.
            by_address = await handler.execute(make_params(
                config={"url": f"https://127.0.0.1:{echo.port}/", "retries": 0}))
        assert by_name.outcome == "success", by_name.error
        assert by_name.output["json"] == {"request": "GET /secure HTTP/1.1",
                                          "host": f"{NAME}:{echo.port}"}
        assert by_address.error is not None
        assert by_address.error.code == "REQUEST_FAILED"
        assert "certificate" in by_address.error.message.lower()
