"""The browser tests' world: a real ``flowmonkey api`` process and a headless Chromium.

The server runs the example flows (``examples/flows``: order processing, and the spend
approval that waits for a manager's signal) on a durable embedded log in the test's
temporary directory, with an admin key and a tenant key, on a free port; it is polled
until ``/health`` answers, with a deadline. The browser is Debian's ``chromium``
(``make test`` installs it) driven by Playwright's Python client with
``executable_path``: Playwright's own browser downloads are never used. A missing
browser fails the tests, it does not skip them.

Screenshots go to ``$FLOWMONKEY_TEST_OUTPUT/screenshots`` (else
``.test-output/screenshots``, git-ignored); ``tests/browser/screenshots.py`` writes the
README's images from the same pages.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from tests.process_support import ROOT, stop_process

CHROMIUM = os.environ.get("FLOWMONKEY_CHROMIUM", "/usr/bin/chromium")
ADMIN_KEY = "browser-admin-key-0123456789"
TENANT_KEY = "browser-tenant-key-0123456789"
TENANT = "acme"
UI_SECRET = "browser-tests-ui-secret-0123456789"
START_TIMEOUT_S = 60.0
WAIT_S = 20.0  # what a test waits at most for a page or an execution to change


def output_dir() -> Path:
    base = os.environ.get("FLOWMONKEY_TEST_OUTPUT")
    root = Path(base) if base else ROOT / ".test-output"
    path = root / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running ``flowmonkey api`` and a JSON client of its API (admin key)."""

    base_url: str
    process: subprocess.Popen[str]
    out: Path

    def api(self, method: str, path: str, key: str = ADMIN_KEY, **kwargs: Any) -> Any:
        response = httpx.request(method, self.base_url + path, timeout=10,
                                 headers={"Authorization": f"Bearer {key}"}, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code,
                                            response.text)
        return response.json() if response.content else None

    def start(self, flow_id: str, context: dict[str, Any], key: str = ADMIN_KEY,
              **fields: Any) -> str:
        """Start an execution; its id."""
        body = {"flowId": flow_id, "context": context, **fields}
        created = self.api("POST", "/v1/executions", key=key, json=body)
        execution_id: str = created["execution"]["id"]
        return execution_id

    def execution(self, execution_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api("GET", f"/v1/executions/{execution_id}")
        return found

    def wait_status(self, execution_id: str, *statuses: str) -> dict[str, Any]:
        """Poll until the execution has one of ``statuses`` (deadline WAIT_S)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            found = self.execution(execution_id)
            if found["status"] in statuses:
                return found
            assert time.monotonic() < deadline, (
                f"{execution_id} still {found['status']}, wanted {statuses}")
            time.sleep(0.05)


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update({
        "FLOWMONKEY_API_KEYS": f"{ADMIN_KEY}=*,{TENANT_KEY}={TENANT}",
        "FLOWMONKEY_DATA_DIR": str(data_dir),
        "FLOWMONKEY_UI_SECRET": UI_SECRET,
    })
    return env


@contextmanager
def running_server(tmp: Path) -> Iterator[Server]:
    """``flowmonkey api`` on a free port with its log under ``tmp``, once /health
    answers (deadline START_TIMEOUT_S); stopped on leaving."""
    port = free_port()
    out = tmp / "api.log"
    args = [sys.executable, "-m", "flowmonkey.cli", "api", "--port", str(port),
            "--app", str(ROOT / "examples" / "flows" / "approval.py"),
            "--flows-dir", str(ROOT / "examples" / "flows")]
    with out.open("w") as sink:
        process = subprocess.Popen(args, cwd=ROOT, env=_env(tmp / "data"), stdout=sink,
                                   stderr=subprocess.STDOUT, text=True)
    started = Server(f"http://127.0.0.1:{port}", process, out)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"flowmonkey api exited:\n{out.read_text()}"
            assert time.monotonic() < deadline, \
                f"flowmonkey api gave no /health in {START_TIMEOUT_S} s:\n{out.read_text()}"
            try:
                if httpx.get(started.base_url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield started
    finally:
        stop_process(process)


def log_in(page: Page, key: str = ADMIN_KEY) -> None:
    """Log in through the form, as a person would."""
    page.goto("/ui/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/ui/login" not in url)


def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot into the run's output directory."""
    path = output_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def order(order_id: str, *, shipping: str = "express", qty: Any = 3,
          price: float = 1.5) -> dict[str, Any]:
    """The context of an ``order-processing`` execution (a ``qty`` that is not a
    number fails its ``validate`` step)."""
    return {"order": {"id": order_id, "shipping": shipping,
                      "items": [{"sku": "banana", "qty": qty, "price": price}]}}


@dataclass(frozen=True)
class Seeded:
    """Executions in each state, for the tests and the screenshots."""

    completed: str  # an order shipped express (version 1.1.0, with its pipe)
    failed: str  # an order whose quantity is not a number: failed at validate
    waiting: str  # a spend approval waiting for its manager's signal
    cancelled: str  # a spend approval cancelled while it waited


def seed(server: Server) -> Seeded:
    completed = server.start("order-processing", order("A-100"))
    failed = server.start("order-processing", order("A-101", qty="three"))
    waiting = server.start("spend-approval", {"amount": 250})
    cancelled = server.start("spend-approval", {"amount": 990})
    server.wait_status(completed, "completed")
    server.wait_status(failed, "failed")
    server.wait_status(waiting, "waiting")
    server.wait_status(cancelled, "waiting")
    server.api("POST", f"/v1/executions/{cancelled}/cancel",
               json={"reason": "the budget is frozen"})
    server.wait_status(cancelled, "cancelled")
    return Seeded(completed, failed, waiting, cancelled)
