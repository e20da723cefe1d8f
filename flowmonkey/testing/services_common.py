"""Shared pieces of the integration-test services (:mod:`flowmonkey.testing.services`).

The error type, the env vars that point the tests at existing services, free ports of
127.0.0.1, :func:`run_async` for sync callers, and a stderr log line.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

__all__ = [
    "ENV_KAFKA_BOOTSTRAP",
    "ENV_KAFKA_DEFAULT_BOOTSTRAP",
    "ENV_KAFKA_SASL_BOOTSTRAP",
    "ENV_KAFKA_SASL_MECHANISMS",
    "ENV_KAFKA_SASL_PASSWORD",
    "ENV_KAFKA_SASL_SSL_BOOTSTRAP",
    "ENV_KAFKA_SASL_SSL_CAFILE",
    "ENV_KAFKA_SASL_SSL_MECHANISMS",
    "ENV_KAFKA_SASL_SSL_PASSWORD",
    "ENV_KAFKA_SASL_SSL_USERNAME",
    "ENV_KAFKA_SASL_USERNAME",
    "ENV_POSTGRES_DSN",
    "HOST",
    "ServiceError",
    "free_port",
    "free_ports",
    "is_root",
    "log_status",
    "repo_root",
    "run_async",
    "tail_of",
    "tcp_open",
]

ENV_KAFKA_BOOTSTRAP = "FLOWMONKEY_TEST_KAFKA_BOOTSTRAP"
# a broker with Apache Kafka's default settings (auto.create.topics.enable=true, 7-day
# retention), for the tests of how FlowMonkey makes and checks its topics
ENV_KAFKA_DEFAULT_BOOTSTRAP = "FLOWMONKEY_TEST_KAFKA_DEFAULT_BOOTSTRAP"
# an external broker's SASL_PLAINTEXT listener and a user it accepts, for the SASL tests
ENV_KAFKA_SASL_BOOTSTRAP = "FLOWMONKEY_TEST_KAFKA_SASL_BOOTSTRAP"
ENV_KAFKA_SASL_USERNAME = "FLOWMONKEY_TEST_KAFKA_SASL_USERNAME"
ENV_KAFKA_SASL_PASSWORD = "FLOWMONKEY_TEST_KAFKA_SASL_PASSWORD"
ENV_KAFKA_SASL_MECHANISMS = "FLOWMONKEY_TEST_KAFKA_SASL_MECHANISMS"  # default PLAIN
# and its SASL_SSL listener, a user it accepts and the CA file (PEM) that signed the
# listener's certificate, for the TLS tests
ENV_KAFKA_SASL_SSL_BOOTSTRAP = "FLOWMONKEY_TEST_KAFKA_SASL_SSL_BOOTSTRAP"
ENV_KAFKA_SASL_SSL_USERNAME = "FLOWMONKEY_TEST_KAFKA_SASL_SSL_USERNAME"
ENV_KAFKA_SASL_SSL_PASSWORD = "FLOWMONKEY_TEST_KAFKA_SASL_SSL_PASSWORD"
ENV_KAFKA_SASL_SSL_MECHANISMS = "FLOWMONKEY_TEST_KAFKA_SASL_SSL_MECHANISMS"  # default PLAIN
ENV_KAFKA_SASL_SSL_CAFILE = "FLOWMONKEY_TEST_KAFKA_SASL_SSL_CAFILE"
ENV_POSTGRES_DSN = "FLOWMONKEY_TEST_POSTGRES_DSN"

HOST = "127.0.0.1"
_T = TypeVar("_T")


class ServiceError(RuntimeError):
    """A test service could not be fetched, started or reached."""


def run_async(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``factory()`` to completion on a private event loop in a helper thread.

    Safe to call from sync code whether or not an event loop is running in the
    calling thread (e.g. from a sync pytest fixture used by an async test).
    """
    result: list[_T] = []
    error: list[BaseException] = []

    async def main() -> None:
        result.append(await factory())

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="flowmonkey-services", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail_of(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def is_root() -> bool:
    return os.geteuid() == 0


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def log_status(msg: str) -> None:
    print(f"[flowmonkey.services] {msg}", file=sys.stderr, flush=True)
