"""The HTTP API's throughput and CPU per request, with the load from another process.

Starts ``flowmonkey api --no-auth`` on the embedded log (in memory; ``--data-dir`` for
the durable one) with the example flows in a process of its own, and drives it from
this process with an async httpx client over ``--connections`` connections:

* ``get``: ``GET /v1/executions/{id}`` of executions created beforehand, as fast as
  the connections allow: requests/s, p50/p99 latency (ms);
* ``create_get``: pairs of ``POST /v1/executions`` (the example order flow with
  ``examples/order-input.json``) then ``GET`` of the execution it started: pairs/s,
  p50/p99 of a pair;
* ``engine``: the same GETs and pairs on an Engine in this process, without HTTP, at
  the same concurrency: what the engine allows, and its CPU per call.

Each HTTP phase reports the API process's CPU per request (``api_cpu_ms_per_request``,
user + system time read with psutil), and this process's (the client's) share of a
core: near 1, the load generator limits the run, not the API. ``http_cpu_ms_per_request``
is the API's CPU per request less the engine's own for the same call: what the HTTP
layer adds. Issue 15 wants it at most ~1 ms, ``GET`` ≥ 2,000/s, and creates limited by
the engine, not the HTTP layer. ``api_cpu_bound_get_per_s`` is the rate the API's CPU
per request allows on one core (it is one process): what it could serve with a client
and cores to spare.

    python bench/api_throughput.py
    python bench/api_throughput.py --connections 64 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from flowmonkey import Engine
from flowmonkey.log import EmbeddedLog

ROOT = Path(__file__).resolve().parents[1]
FLOWS_DIR = ROOT / "examples" / "flows"
FLOW_ID = "order-processing"
ORDER = json.loads((ROOT / "examples" / "order-input.json").read_text())
GOALS = {"get_per_s": 2000, "http_cpu_ms_per_request": 1.0}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(port: int, data_dir: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWMONKEY_KAFKA", "FLOWMONKEY_POSTGRES"))}
    if data_dir:
        env["FLOWMONKEY_DATA_DIR"] = data_dir
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("flowmonkey")), "api", "--no-auth",
         "--flows-dir", str(FLOWS_DIR), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_healthy(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flowmonkey api exited with {proc.returncode}")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("flowmonkey api did not answer /health within 60 s")


async def closed_loop(action: Callable[[int], Awaitable[None]], workers: int,
                      seconds: float) -> tuple[int, float, list[float]]:
    """``workers`` loops calling ``action`` for ``seconds``: (calls, elapsed, latencies)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        i = n
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            await action(i)
            latencies.append((time.perf_counter() - began) * 1000)
            i += workers

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(workers)))
    return len(latencies), time.perf_counter() - began, latencies


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def figures(name: str, calls: int, requests_per_call: int, elapsed: float,
            latencies: list[float], api_cpu: float | None, own_cpu: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        f"{name}_per_s": round(calls / elapsed, 1),
        "latency_ms_p50": round(percentile(latencies, 0.50), 2),
        "latency_ms_p99": round(percentile(latencies, 0.99), 2),
        "calls": calls, "seconds": round(elapsed, 2)}
    if api_cpu is not None:
        out["api_cpu_ms_per_request"] = round(api_cpu / (calls * requests_per_call) * 1000, 3)
        out["api_cpu_share_of_a_core"] = round(api_cpu / elapsed, 2)
        # the rate the API's CPU allows (one process: one core at most), whatever
        # limited this run
        out[f"api_cpu_bound_{name}_per_s"] = round(calls / api_cpu) if api_cpu else None
        out["client_cpu_share_of_a_core"] = round(own_cpu / elapsed, 2)
        # httpx costs several ms of CPU per request: on a small machine the client
        # can cap the rate before the API does (compare the two shares)
        out["client_cpu_ms_per_request"] = round(own_cpu / (calls * requests_per_call)
                                                 * 1000, 3)
    else:
        out["cpu_ms_per_call"] = round(own_cpu / calls * 1000, 3)
    return out


async def http_phases(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    tmp = tempfile.TemporaryDirectory() if args.durable else None
    proc = start_api(port, tmp.name if tmp else None)
    api = psutil.Process(proc.pid)
    limits = httpx.Limits(max_connections=args.connections,
                          max_keepalive_connections=args.connections)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                     timeout=60) as client:
            await wait_healthy(client, proc)

            async def create() -> str:
                response = await client.post("/v1/executions",
                                             json={"flowId": FLOW_ID, "context": ORDER})
                response.raise_for_status()
                return str(response.json()["execution"]["id"])

            ids = await asyncio.gather(*(create() for _ in range(args.seed)))

            async def get(i: int) -> None:
                (await client.get(f"/v1/executions/{ids[i % len(ids)]}")).raise_for_status()

            async def create_get(i: int) -> None:
                (await client.get(f"/v1/executions/{await create()}")).raise_for_status()

            await closed_loop(get, args.connections, 1.0)  # warm up
            results = {}
            for name, action, per_call in (("get", get, 1), ("create_get", create_get, 2)):
                print(f"{name}: {args.seconds}s over {args.connections} connections …",
                      file=sys.stderr)
                cpu_before, own_before = cpu_seconds(api), time.process_time()
                calls, elapsed, latencies = await closed_loop(action, args.connections,
                                                              args.seconds)
                results[name] = figures(name, calls, per_call, elapsed, latencies,
                                        cpu_seconds(api) - cpu_before,
                                        time.process_time() - own_before)
            results["api_peak_rss_mib"] = round(api.memory_info().rss / 2**20, 1)
            return results
    finally:
        proc.terminate()
        proc.wait(30)
        if tmp is not None:
            tmp.cleanup()


async def engine_phase(args: argparse.Namespace) -> dict[str, Any]:
    """The GETs and create-then-get pairs on an Engine in this process: no HTTP."""
    flow = json.loads((FLOWS_DIR / "order.json").read_text())
    tmp = tempfile.TemporaryDirectory() if args.durable else None
    engine = Engine(flows=[flow], log=EmbeddedLog(path=tmp.name if tmp else None))

    async def create() -> str:
        return (await engine.create(FLOW_ID, ORDER)).execution.id

    try:
        async with engine:
            ids = await asyncio.gather(*(create() for _ in range(args.seed)))

            async def get(i: int) -> None:
                await engine.get(ids[i % len(ids)])

            async def create_get(i: int) -> None:
                await engine.get(await create())

            await closed_loop(get, args.connections, 1.0)
            results = {}
            for name, action in (("get", get), ("create_get", create_get)):
                began = time.process_time()
                calls, elapsed, latencies = await closed_loop(action, args.connections,
                                                              args.seconds)
                results[name] = figures(name, calls, 1, elapsed, latencies, None,
                                        time.process_time() - began)
            return results
    finally:
        if tmp is not None:
            tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32,
                        help="concurrent connections (default 32)")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="duration of each phase (default 8)")
    parser.add_argument("--seed", type=int, default=500,
                        help="executions created before the GET phase (default 500)")
    parser.add_argument("--durable", action="store_true",
                        help="the durable embedded log (in a temporary directory)")
    args = parser.parse_args()
    http = asyncio.run(http_phases(args))
    print("engine, no HTTP …", file=sys.stderr)
    engine = asyncio.run(engine_phase(args))
    get, pair = http["get"], http["create_get"]
    # the API's CPU per request less the engine's for the same work (a pair is 2 requests)
    get["http_cpu_ms_per_request"] = round(
        get["api_cpu_ms_per_request"] - engine["get"]["cpu_ms_per_call"], 3)
    pair["http_cpu_ms_per_request"] = round(
        pair["api_cpu_ms_per_request"] - engine["create_get"]["cpu_ms_per_call"] / 2, 3)
    pair["engine_share"] = round(pair["create_get_per_s"]
                                 / engine["create_get"]["create_get_per_s"], 2)
    # the same by CPU (steadier on a shared machine): the pairs/s the API's CPU allows
    # over those the engine's own CPU per pair allows
    pair["engine_share_cpu"] = round(pair["api_cpu_bound_create_get_per_s"]
                                     * engine["create_get"]["cpu_ms_per_call"] / 1000, 2)
    print(json.dumps({
        "benchmark": "api_throughput", "log": "durable" if args.durable else "memory",
        "connections": args.connections, "cpu_count": os.cpu_count(),
        **http, "engine_no_http": engine,
        "goals": {
            "GET >= 2,000/s": get["get_per_s"] >= GOALS["get_per_s"],
            "HTTP adds <= ~1 ms CPU per request (GET)":
                get["http_cpu_ms_per_request"] <= GOALS["http_cpu_ms_per_request"],
            "HTTP adds <= ~1 ms CPU per request (create, get)":
                pair["http_cpu_ms_per_request"] <= GOALS["http_cpu_ms_per_request"],
            # limited by the engine: through HTTP at 80% or more of what the engine's own
            # CPU per pair allows
            "creates limited by the engine (engine_share_cpu >= 0.8)":
                pair["engine_share_cpu"] >= 0.8,
        }}, indent=2))


if __name__ == "__main__":
    main()
