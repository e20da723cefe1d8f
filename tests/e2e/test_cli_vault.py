"""The commands that run handlers give them a vault read from the environment
(``FLOWMONKEY_SECRET_<NAME>``, or another prefix in ``FLOWMONKEY_SECRET_PREFIX``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flowmonkey.settings import SettingsError, vault_from_env

ROOT = Path(__file__).resolve().parents[2]
SECRET = "env-secret-5be0c2d9"


class Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        Recorder.seen.append(self.headers.get("Authorization", ""))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize(("prefix", "variable"), [
    (None, "FLOWMONKEY_SECRET_PAYMENTS_TOKEN"), ("MYAPP_", "MYAPP_PAYMENTS_TOKEN")])
def test_run_resolves_a_vault_header_from_the_environment(
        tmp_path: Path, server: int, prefix: str | None, variable: str) -> None:
    flow = {"id": "charge", "version": "1.0.0", "initialStepId": "call", "steps": {"call": {
        "id": "call", "type": "http", "outputKey": "response",
        "config": {"url": f"http://127.0.0.1:{server}/charge", "retries": 0,
                   "headers": {"Authorization": {"$vault": "payments-token"}}},
        "transitions": {"onSuccess": None}}}}
    path = tmp_path / "charge.json"
    path.write_text(json.dumps(flow))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_SECRET")}
    env[variable] = SECRET
    if prefix is not None:
        env["FLOWMONKEY_SECRET_PREFIX"] = prefix
    proc = subprocess.run([sys.executable, "-m", "flowmonkey.cli", "run", str(path), "--json",
                           "--allow-private-http"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed"
    assert Recorder.seen == [SECRET]
    assert SECRET not in proc.stdout + proc.stderr


def test_a_bad_secret_prefix_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="FLOWMONKEY_SECRET_PREFIX"):
        vault_from_env({"FLOWMONKEY_SECRET_PREFIX": "MY-APP"})
    assert vault_from_env({}).prefix == "FLOWMONKEY_SECRET_"
