"""A small HTTP/1.1 load generator on raw asyncio streams, run in processes of its own.

httpx costs about 3.5 ms of CPU per request: on a 2-core machine it capped what
``api_throughput.py`` could measure well before the API did. This client writes the
request bytes itself and reads a response by its ``Content-Length`` over keep-alive
connections (no pipelining, no chunked bodies: the API answers JSON with a length), at
a few tens of µs of CPU per request. :func:`run_phase` runs it in ``clients``
processes, started together after each has opened its connections, and reports their
CPU beside their counts, so a reader sees whether the client or the server limited a
run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

_HEAD_END = b"\r\n\r\n"


class HttpError(RuntimeError):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection: one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: str = "") -> tuple[int, bytes]:
        """(status, body) of one request."""
        if body is None:
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}\r\n"
            self.writer.write(head.encode())
        else:
            head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
            self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(_HEAD_END)
        status = int(raw[9:12])
        lower = raw.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            raise HttpError(f"{method} {path}: no Content-Length in the answer")
        end = lower.index(b"\r\n", at + 17)
        return status, await self.reader.readexactly(int(lower[at + 17:end]))

    def close(self) -> None:
        self.writer.close()


async def create_execution(conn: Connection, payload: bytes) -> str:
    status, body = await conn.request("POST", "/v1/executions", payload)
    if status not in (200, 201):
        raise HttpError(f"POST /v1/executions answered {status}: {body[:300]!r}")
    return str(orjson.loads(body)["execution"]["id"])


async def get_execution(conn: Connection, execution_id: str) -> None:
    status, body = await conn.request("GET", f"/v1/executions/{execution_id}")
    if status != 200:
        raise HttpError(f"GET /v1/executions/{execution_id} answered {status}: "
                        f"{body[:300]!r}")


@dataclass
class PhaseResult:
    calls: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)


async def _drive(host: str, port: int, phase: str, ids: list[str], payload: bytes,
                 connections: int, offset: int, seconds: float,
                 ready: multiprocessing.synchronize.Barrier) -> PhaseResult:
    conns = [await Connection.open(host, port) for _ in range(connections)]
    latencies: list[float] = []
    # every process has its connections open before any starts: the server's CPU is
    # read between the barrier and the end of the phase
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    stop_at = time.perf_counter() + seconds

    async def worker(n: int, conn: Connection) -> None:
        i = offset + n
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            if phase == "get":
                await get_execution(conn, ids[i % len(ids)])
            else:
                await get_execution(conn, await create_execution(conn, payload))
            latencies.append((time.perf_counter() - began) * 1000)
            i += connections

    cpu, began = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(worker(n, c) for n, c in enumerate(conns)))
    finally:
        for conn in conns:
            conn.close()
    return PhaseResult(len(latencies), time.perf_counter() - began,
                       time.process_time() - cpu, latencies)


def _client(host: str, port: int, phase: str, ids: list[str], payload: bytes,
            connections: int, offset: int, seconds: float,
            ready: multiprocessing.synchronize.Barrier,
            out: multiprocessing.Queue[Any]) -> None:
    try:
        result = asyncio.run(_drive(host, port, phase, ids, payload, connections, offset,
                                    seconds, ready))
        out.put(("ok", result))
    except BaseException as exc:  # the parent reports it
        ready.abort()
        out.put(("error", repr(exc)))


def run_phase(host: str, port: int, phase: str, *, ids: list[str], payload: bytes,
              clients: int, connections: int, seconds: float,
              on_start: Any = None) -> PhaseResult:
    """``phase`` (``get`` or ``create_get``) from ``clients`` processes, ``connections``
    in all; ``on_start()`` is called once they are all connected, and its time is when
    the phase starts (read the server's CPU there). The result sums the processes'
    calls and CPU; ``elapsed`` is the longest process's."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(clients + 1)
    out: multiprocessing.Queue[Any] = ctx.Queue()
    per = [connections // clients + (1 if n < connections % clients else 0)
           for n in range(clients)]
    procs = [ctx.Process(target=_client, args=(host, port, phase, ids, payload, per[n],
                                               sum(per[:n]), seconds, ready, out),
                         daemon=True) for n in range(clients)]
    for proc in procs:
        proc.start()
    try:
        ready.wait(timeout=120)
        if on_start is not None:
            on_start()
        total = PhaseResult()
        for _ in procs:
            status, value = out.get(timeout=seconds + 120)
            if status != "ok":
                raise HttpError(f"a load process failed: {value}")
            total.calls += value.calls
            total.cpu += value.cpu
            total.elapsed = max(total.elapsed, value.elapsed)
            total.latencies.extend(value.latencies)
        return total
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
