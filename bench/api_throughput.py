"""The HTTP API's throughput and CPU per request, with the load from other processes.

Starts ``flowmonkey api --no-auth`` on the embedded log (in memory; ``--durable`` for
the durable one) with the example flows in a process of its own, and drives it from
``--clients`` load processes (default 1) with a raw asyncio HTTP/1.1 keep-alive client
(``http_load.py``: tens of µs of CPU per request, where httpx took ~3.5 ms and capped
what could be measured) over ``--connections`` connections in all:

* ``get``: ``GET /v1/executions/{id}`` of executions created beforehand, as fast as
  the connections allow: requests/s, p50/p99 latency (ms);
* ``create_get``: pairs of ``POST /v1/executions`` (the example order flow with
  ``examples/order-input.json``) then ``GET`` of the execution it started: pairs/s,
  p50/p99 of a pair;
* ``engine``: the same GETs and pairs on an Engine in this process, without HTTP, at
  the same concurrency: what the engine allows, and its CPU per call.

Each HTTP phase reports the API process's CPU per request (``api_cpu_ms_per_request``,
user + system time read with psutil) and its share of a core, and the load processes'
(``client_cpu_share_of_a_core``, all of them): the API is one process, so near 1.0 it
is what limits the run; a client share near the cores left says the client did.
``http_cpu_ms_per_request`` is the API's CPU per request less the engine's own for the
same call: what the HTTP layer adds. Issue 15 wants it at most ~1 ms, ``GET`` ≥
2,000/s, and creates limited by the engine, not the HTTP layer.
``api_cpu_bound_get_per_s`` is the rate the API's CPU per request allows on one core:
what it could serve with a client and cores to spare. ``--api-arg`` passes options to
``flowmonkey api`` (``--api-arg=--http=h11``, ``--api-arg=--loop=asyncio``) for A/B
runs; ``--py-spy PREFIX`` records the API process during each phase.

    python bench/api_throughput.py
    python bench/api_throughput.py --connections 64 --clients 2 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import psutil

from flowmonkey import Engine
from flowmonkey.log import EmbeddedLog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import Connection, create_execution, run_phase

ROOT = Path(__file__).resolve().parents[1]
FLOWS_DIR = ROOT / "examples" / "flows"
FLOW_ID = "order-processing"
ORDER = json.loads((ROOT / "examples" / "order-input.json").read_text())
PAYLOAD = orjson.dumps({"flowId": FLOW_ID, "context": ORDER})
HOST = "127.0.0.1"
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


def start_api(port: int, data_dir: str | None,
              extra: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWMONKEY_KAFKA", "FLOWMONKEY_POSTGRES"))}
    if data_dir:
        env["FLOWMONKEY_DATA_DIR"] = data_dir
    # the flowmonkey of this tree, whichever one the interpreter has installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from flowmonkey.cli import main; sys.exit(main())",
         "api", "--no-auth",
         "--flows-dir", str(FLOWS_DIR), "--port", str(port), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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


async def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flowmonkey api exited with {proc.returncode}")
        try:
            conn = await Connection.open(HOST, port)
            try:
                if (await conn.request("GET", "/health"))[0] == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("flowmonkey api did not answer /health within 60 s")


async def seed(port: int, proc: subprocess.Popen[bytes], count: int,
               connections: int) -> list[str]:
    """Waits for the API, then creates ``count`` executions: their ids."""
    await wait_healthy(port, proc)
    conns = [await Connection.open(HOST, port) for _ in range(min(connections, count))]
    ids: list[str] = []

    async def creator(conn: Connection, n: int) -> None:
        for _ in range(n):
            ids.append(await create_execution(conn, PAYLOAD))

    per, extra = divmod(count, len(conns))
    await asyncio.gather(*(creator(c, per + (i < extra)) for i, c in enumerate(conns)))
    for conn in conns:
        conn.close()
    return ids


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
        # the load processes' CPU, all of them: next to the API's share, who limited
        # the run (the API is one process, so at most 1.0 of a core)
        out["client_cpu_share_of_a_core"] = round(own_cpu / elapsed, 2)
        out["client_cpu_ms_per_request"] = round(own_cpu / (calls * requests_per_call)
                                                 * 1000, 3)
    else:
        out["cpu_ms_per_call"] = round(own_cpu / calls * 1000, 3)
    return out


def start_profiler(pid: int, out: str, seconds: float) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the API process for one phase (raw folded stacks)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: no profile", file=sys.stderr)
        return None
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--format", "raw",
                             "--duration", str(max(1, int(seconds))), "--rate", "250",
                             "--nonblocking", "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def http_phase(args: argparse.Namespace, name: str, per_call: int, port: int,
               api: psutil.Process, ids: list[str]) -> dict[str, Any]:
    cpu_before: list[float] = []
    profiler: list[subprocess.Popen[bytes] | None] = []

    def started() -> None:
        cpu_before.append(cpu_seconds(api))
        if args.py_spy:
            profiler.append(start_profiler(api.pid, f"{args.py_spy}-{name}.txt",
                                           args.seconds))

    result = run_phase(HOST, port, name, ids=ids, payload=PAYLOAD, clients=args.clients,
                       connections=args.connections, seconds=args.seconds,
                       on_start=started)
    api_cpu = cpu_seconds(api) - cpu_before[0]
    for spy in profiler:
        if spy is not None:
            spy.wait(60)
    return figures(name, result.calls, per_call, result.elapsed, result.latencies,
                   api_cpu, result.cpu)


def http_phases(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    tmp = tempfile.TemporaryDirectory() if args.durable else None
    proc = start_api(port, tmp.name if tmp else None, args.api_arg)
    api = psutil.Process(proc.pid)
    try:
        ids = asyncio.run(seed(port, proc, args.seed, args.connections))
        run_phase(HOST, port, "get", ids=ids, payload=PAYLOAD, clients=args.clients,
                  connections=args.connections, seconds=1.0)  # warm up
        results: dict[str, Any] = {}
        for name, per_call in (("get", 1), ("create_get", 2)):
            print(f"{name}: {args.seconds}s over {args.connections} connections from "
                  f"{args.clients} load processes …", file=sys.stderr)
            results[name] = http_phase(args, name, per_call, port, api, ids)
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
    parser.add_argument("--clients", type=int, default=1,
                        help="load generator processes sharing the connections (default 1)")
    parser.add_argument("--api-arg", action="append", default=[], metavar="ARG",
                        help="an argument for `flowmonkey api` (repeat it), e.g. "
                             "--api-arg=--http=h11")
    parser.add_argument("--py-spy", metavar="PREFIX",
                        help="record the API process with py-spy during each phase, into "
                             "PREFIX-get.txt and PREFIX-create_get.txt (folded stacks)")
    parser.add_argument("--no-engine", action="store_true",
                        help="skip the engine phase (no HTTP figures to subtract)")
    parser.add_argument("--durable", action="store_true",
                        help="the durable embedded log (in a temporary directory)")
    args = parser.parse_args()
    http = http_phases(args)
    get, pair = http["get"], http["create_get"]
    out: dict[str, Any] = {
        "benchmark": "api_throughput", "log": "durable" if args.durable else "memory",
        "connections": args.connections, "load_processes": args.clients,
        "api_args": args.api_arg, "cpu_count": os.cpu_count(), **http}
    goals = {"GET >= 2,000/s": get["get_per_s"] >= GOALS["get_per_s"]}
    if not args.no_engine:
        print("engine, no HTTP …", file=sys.stderr)
        engine = asyncio.run(engine_phase(args))
        # the API's CPU per request less the engine's for the same work (a pair is 2
        # requests)
        get["http_cpu_ms_per_request"] = round(
            get["api_cpu_ms_per_request"] - engine["get"]["cpu_ms_per_call"], 3)
        pair["http_cpu_ms_per_request"] = round(
            pair["api_cpu_ms_per_request"] - engine["create_get"]["cpu_ms_per_call"] / 2, 3)
        pair["engine_share"] = round(pair["create_get_per_s"]
                                     / engine["create_get"]["create_get_per_s"], 2)
        # the same by CPU (steadier on a shared machine): the pairs/s the API's CPU
        # allows over those the engine's own CPU per pair allows
        pair["engine_share_cpu"] = round(pair["api_cpu_bound_create_get_per_s"]
                                         * engine["create_get"]["cpu_ms_per_call"] / 1000, 2)
        out["engine_no_http"] = engine
        goals.update({
            "HTTP adds <= ~1 ms CPU per request (GET)":
                get["http_cpu_ms_per_request"] <= GOALS["http_cpu_ms_per_request"],
            "HTTP adds <= ~1 ms CPU per request (create, get)":
                pair["http_cpu_ms_per_request"] <= GOALS["http_cpu_ms_per_request"],
            # limited by the engine: through HTTP at 80% or more of what the engine's
            # own CPU per pair allows
            "creates limited by the engine (engine_share_cpu >= 0.8)":
                pair["engine_share_cpu"] >= 0.8})
    print(json.dumps({**out, "goals": goals}, indent=2))

if __name__ == "__main__":
    main()
