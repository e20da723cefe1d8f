"""Place example orders on a running deployment and wait until each one ends.

Two ways in, both reading the same ``FLOWMONKEY_*`` variables as the services:

* by default, an :class:`~flowmonkey.Engine` that runs no processors publishes
  ``execution.start`` commands on the commands topic and follows the events topic to
  see the answers: nothing runs but Kafka and the processors::

    docker compose -f deploy/docker-compose.yml run --rm orders            # 5 orders
    docker compose -f deploy/docker-compose.yml run --rm orders --count 50

  or, from the host with this package installed (compose publishes Kafka on
  127.0.0.1:9094)::

    FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9094 python deploy/place_orders.py

* with ``--api URL``, over the HTTP API (``flowmonkey api``, the compose profile
  ``api``): ``POST /v1/executions``, then ``GET /v1/executions/{id}`` until the order
  ends, as any client in any language would; the key is ``FLOWMONKEY_API_KEY`` (one
  of the server's ``FLOWMONKEY_API_KEYS``; none for a server run with ``--no-auth``)::

    FLOWMONKEY_API_KEY=... python deploy/place_orders.py --api http://localhost:8080

The flows come from the flows topic, where the processors published them, so start
the processors first. Every third order has no items and fails (``EMPTY_ORDER``);
the others complete after a retried charge and a 2 s settlement wait. The exit code
is 0 when every order ended as expected.

Without ``--api``, the client replays the events topic into memory when it starts (to
answer its own ``wait`` calls), which is fine for a demo; queries on a real deployment
go to the HTTP API or the Postgres projection the projector keeps
(``flowmonkey.fm_executions``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from typing import Any

import httpx

from flowmonkey import Engine, ExecutionStatus
from flowmonkey.errors import FlowMonkeyError
from flowmonkey.settings import Settings, SettingsError

FLOW_ID = "order-fulfilment"
ENDED = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


def order(number: int) -> dict[str, Any]:
    items = [] if number % 3 == 0 else [
        {"sku": f"SKU-{number}", "qty": 1 + number % 4, "price": 9.5}]
    return {"id": f"ORD-{number:04d}-{uuid.uuid4().hex[:6]}", "items": items}


def expected_status(number: int) -> str:
    return "failed" if number % 3 == 0 else "completed"


async def place(count: int, timeout_s: float) -> int:
    settings = Settings.from_env()
    if settings.log_kind != "kafka":
        print("error: set FLOWMONKEY_KAFKA_BOOTSTRAP to the brokers of the deployment",
              file=sys.stderr)
        return 2
    engine = Engine(log=settings.make_log(client_id="flowmonkey-orders"),
                    run_processors=False)
    started = time.monotonic()
    async with engine:
        async def create(number: int) -> tuple[int, str]:
            result = await engine.create(FLOW_ID, {"order": order(number)})
            print(f"placed order {number}: execution {result.execution.id}", flush=True)
            return number, result.execution.id

        # concurrently: each create waits for the processor's answer, and concurrent
        # appends share Kafka transactions
        created = await asyncio.gather(*(create(n) for n in range(1, count + 1)))
        unexpected = 0
        for number, execution_id in created:
            execution = await engine.wait(execution_id, timeout_s=timeout_s,
                                          until=ENDED)
            expected = expected_status(number)
            status = execution.status.value
            detail = (execution.context.get("shipment") if status == "completed" else
                      execution.error.code if execution.error else "")
            print(f"order {number}: {status} {detail}", flush=True)
            unexpected += status != expected
    print(f"{count} orders ended in {time.monotonic() - started:.1f} s, "
          f"{unexpected} not as expected", flush=True)
    return 1 if unexpected else 0


async def place_over_http(api: str, count: int, timeout_s: float) -> int:
    """The same orders through the HTTP API: create each, then poll until it ends."""
    key = os.environ.get("FLOWMONKEY_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=api.rstrip("/"), headers=headers,
                                 timeout=30) as client:
        async def create(number: int) -> tuple[int, str]:
            response = await client.post("/v1/executions", json={
                "flowId": FLOW_ID, "context": {"order": order(number)}})
            if response.status_code != 201:
                raise FlowMonkeyError(f"POST /v1/executions answered "
                                      f"{response.status_code}: {response.text}")
            execution_id = str(response.json()["execution"]["id"])
            print(f"placed order {number}: execution {execution_id}", flush=True)
            return number, execution_id

        async def ended(execution_id: str) -> dict[str, Any]:
            deadline = time.monotonic() + timeout_s
            while True:
                response = await client.get(f"/v1/executions/{execution_id}")
                response.raise_for_status()
                execution: dict[str, Any] = response.json()
                if execution["status"] in {s.value for s in ENDED}:
                    return execution
                if time.monotonic() > deadline:
                    return execution
                await asyncio.sleep(0.2)

        created = await asyncio.gather(*(create(n) for n in range(1, count + 1)))
        unexpected = 0
        for number, execution_id in created:
            execution = await ended(execution_id)
            status = execution["status"]
            error = execution.get("error") or {}
            detail = (execution["context"].get("shipment") if status == "completed" else
                      error.get("code", ""))
            print(f"order {number}: {status} {detail}", flush=True)
            unexpected += status != expected_status(number)
    print(f"{count} orders ended in {time.monotonic() - started:.1f} s, "
          f"{unexpected} not as expected", flush=True)
    return 1 if unexpected else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=5, help="orders to place (default 5)")
    parser.add_argument("--timeout-s", type=float, default=120.0,
                        help="seconds to wait for each order to end (default 120)")
    parser.add_argument("--api", metavar="URL",
                        help="place them over the HTTP API at URL (e.g. "
                             "http://localhost:8080), with the key in FLOWMONKEY_API_KEY")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        if args.api:
            return asyncio.run(place_over_http(args.api, args.count, args.timeout_s))
        return asyncio.run(place(args.count, args.timeout_s))
    except (FlowMonkeyError, SettingsError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
