"""``flowmonkey api`` as a command: its refusals, its help, and a real server process
that answers /health and exits 0 on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "examples" / "flows"
CLI = [sys.executable, "-m", "flowmonkey.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    return {**env, **extra}


def flowmonkey(*args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False, env=env or clean_env())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_without_keys_it_refuses_to_start_naming_the_variable() -> None:
    proc = flowmonkey("api", "--flows-dir", str(FLOWS))
    assert proc.returncode == 2
    assert "FLOWMONKEY_API_KEYS" in proc.stderr
    assert "--no-auth" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_malformed_key_list_is_refused_without_quoting_the_key() -> None:
    proc = flowmonkey("api", "--flows-dir", str(FLOWS),
                      env=clean_env(FLOWMONKEY_API_KEYS="tiny-secret=tenant-a"))
    assert proc.returncode == 2
    assert "FLOWMONKEY_API_KEYS entry 1" in proc.stderr
    assert "tiny-secret" not in proc.stderr + proc.stdout


def test_without_flows_or_kafka_it_says_what_to_give() -> None:
    proc = flowmonkey("api", "--no-auth")
    assert proc.returncode == 2
    assert "no flows to serve" in proc.stderr


def test_help_lists_the_options_auth_and_exit_codes() -> None:
    proc = flowmonkey("api", "--help")
    assert proc.returncode == 0
    for expected in ("--host", "--port", "--no-auth", "--app", "FLOWMONKEY_API_KEYS",
                     "X-Tenant-Id", "exit codes:", "/openapi.json"):
        assert expected in proc.stdout, expected


def test_a_taken_port_fails_with_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = flowmonkey("api", "--no-auth", "--flows-dir", str(FLOWS), "--port", str(port))
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_the_server_answers_health_and_stops_with_exit_0_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "api.log"
    with out.open("w") as sink:
        server = subprocess.Popen(
            [*CLI, "api", "--no-auth", "--flows-dir", str(FLOWS), "--port", str(port)],
            cwd=ROOT, env=clean_env(), stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        status = None
        while status != 200:
            assert server.poll() is None, f"exited early:\n{out.read_text()}"
            assert time.monotonic() < deadline, f"no /health in 30 s:\n{out.read_text()}"
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.05)
        created = httpx.post(f"http://127.0.0.1:{port}/v1/executions", timeout=10,
                             json={"flowId": "order-processing",
                                   "context": {"order": {"id": "A-1", "items": []}}})
        assert created.status_code == 201, created.text
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0, out.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert "listening on http://127.0.0.1:" in out.read_text()
    assert "stopped" in out.read_text()


def test_with_the_json_log_format_every_line_is_a_json_object(tmp_path: Path) -> None:
    port = free_port()
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        server = subprocess.Popen(
            [*CLI, "api", "--no-auth", "--flows-dir", str(FLOWS), "--port", str(port)],
            cwd=ROOT, env=clean_env(FLOWMONKEY_LOG_FORMAT="json"), stdout=stdout,
            stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in out.read_text():
            assert server.poll() is None, f"exited early:\n{err.read_text()}"
            assert time.monotonic() < deadline, f"not listening in 30 s:\n{err.read_text()}"
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0, err.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    progress = [json.loads(line) for line in out.read_text().splitlines()]
    assert {p["logger"] for p in progress} == {"flowmonkey.api"}
    assert any(p["message"].startswith("listening on http://127.0.0.1:") for p in progress)
    # the --no-auth warning, from the logging module
    logged = [json.loads(line) for line in err.read_text().splitlines()]
    assert any(r["level"] == "WARNING" and "auth" in r["message"].lower() for r in logged)
