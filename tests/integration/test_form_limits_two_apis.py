"""A form's rate limit and duplicate window across two real ``flowmonkey api``
processes on Kafka and PostgreSQL: submissions alternate between them from one client
address, and both see one limit and one window, because the form's partition decides
every submission (a ``flowmonkey processor`` runs it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.process_support import Service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FLOWMONKEY = str(Path(sys.executable).with_name("flowmonkey"))
ADMIN = "admin-key-for-the-form-test-0123"

APP = textwrap.dedent('''
    from flowmonkey import HandlerParams, Result, StepResult, handler


    @handler("greet")
    async def greet(params: HandlerParams) -> StepResult:
        return Result.success({"hello": params.context.get("n")})


    handlers = [greet]
    flows = [{"id": "greet", "version": "1.0.0", "initialStepId": "hello",
              "steps": {"hello": {"id": "hello", "type": "greet", "outputKey": "greeting",
                                  "transitions": {"onSuccess": None}}}}]
    forms = [{"id": "shared", "flowId": "greet",
              "rateLimit": {"perAddress": {"count": 3, "windowS": 600}},
              "duplicateWindowS": 600}]
''')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_two_api_processes_share_one_rate_limit_and_one_duplicate_window(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str],
        running: list[Service], tmp_path: Path) -> None:
    dsn, schema = pg_schema
    app = tmp_path / "forms_app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update({"FLOWMONKEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
                "FLOWMONKEY_TOPIC_PREFIX": kafka_prefix.rstrip("-"),
                "FLOWMONKEY_PARTITIONS": "2", "FLOWMONKEY_POSTGRES_DSN": dsn,
                "FLOWMONKEY_API_KEYS": f"{ADMIN}=*",
                # the test client is the proxy: it names the submitter's address
                "FLOWMONKEY_TRUSTED_PROXIES": "127.0.0.1/32"})
    for args in (["topics", "create"], ["migrate", "--schema", schema]):
        proc = subprocess.run([FLOWMONKEY, *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    running.append(Service("processor", [FLOWMONKEY, "processor", "--app", str(app)], env,
                           tmp_path / "processor.out"))
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        running.append(Service(f"api{i}", [FLOWMONKEY, "api", "--app", str(app), "--schema",
                                           schema, "--port", str(port)], env,
                               tmp_path / f"api{i}.out"))
    for service in running:
        service.wait_for("Ctrl-C to stop", 120)
    apis = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for port in ports]
    try:
        def submit(i: int, body: dict[str, int], address: str) -> httpx.Response:
            return apis[i % 2].post("/v1/forms/shared/submissions", json=body,
                                    headers={"X-Forwarded-For": address})

        # the limit: 3 per address, whichever process takes them
        answers = [submit(i, {"n": i}, "203.0.113.50") for i in range(6)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429, 429, 429], \
            [a.text for a in answers]
        assert all(1 <= int(a.headers["Retry-After"]) <= 600 for a in answers[3:])
        # another address has its own window
        assert submit(0, {"n": 100}, "203.0.113.51").status_code == 201
        # the duplicate window: the same content on the other process answers the first
        first = submit(0, {"n": 7}, "203.0.113.52")
        again = submit(1, {"n": 7}, "203.0.113.53")
        assert (first.status_code, again.status_code) == (201, 200), again.text
        assert again.json() == {**first.json(), "duplicate": True}

        admin = {"Authorization": f"Bearer {ADMIN}"}
        started = {a.json()["executionId"] for a in [*answers[:3], first]}
        deadline = time.monotonic() + 60
        while True:
            done = [apis[1].get(f"/v1/executions/{e}", headers=admin) for e in started]
            if all(d.status_code == 200 and d.json()["status"] == "completed" for d in done):
                break
            assert time.monotonic() < deadline, [d.text for d in done]
            time.sleep(0.2)
        page = apis[0].get("/v1/forms/shared/submissions", params={"limit": 100},
                           headers=admin).json()
        statuses = sorted(s["status"] for s in page["items"])
        assert statuses == ["accepted"] * 5 + ["duplicate"] + ["rate_limited"] * 3
    finally:
        for client in apis:
            client.close()
