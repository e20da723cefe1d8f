"""A local fake of the captcha providers' verify endpoint, over real HTTP.

It answers as reCAPTCHA, hCaptcha and Turnstile do (a form-encoded POST of
``secret``, ``response`` and ``remoteip``; JSON with ``success``), by the token:
``pass`` succeeds, ``hang`` gets no answer until the server stops (a timeout),
``boom`` is a 500, anything else fails with ``invalid-input-response``. A secret
other than the expected one fails with ``invalid-input-secret``. Every request's
fields are kept in ``requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import parse_qsl

import orjson

SECRET = "fake-captcha-secret"


class FakeCaptchaProvider:
    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.requests: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/siteverify"

    async def __aenter__(self) -> FakeCaptchaProvider:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            fields = dict(parse_qsl((await reader.readexactly(length)).decode()))
            self.requests.append(fields)
            token = fields.get("response", "")
            if token == "hang":
                await self._stopping.wait()
                return
            if token == "boom":
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n"
                             b"connection: close\r\n\r\n")
                await writer.drain()
                return
            if fields.get("secret") != self.secret:
                answer = {"success": False, "error-codes": ["invalid-input-secret"]}
            elif token == "pass":
                answer = {"success": True, "hostname": "localhost"}
            else:
                answer = {"success": False, "error-codes": ["invalid-input-response"]}
            body = orjson.dumps(answer)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def unreachable_url() -> str:
    """A URL on a local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/siteverify"
