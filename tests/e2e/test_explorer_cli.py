"""``flowmonkey dev --ui`` and ``flowmonkey demo --ui``: the explorer served next to a
local engine, as real subprocesses, driven over HTTP."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.test_api_cli import free_port
from tests.e2e.test_cli import CLI, FLOWS, ROOT


class Command:
    """A ``flowmonkey`` process whose output is read line by line."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen([*CLI, *args], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        for seen in self.lines:
            if found := re.search(pattern, seen):
                return found
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"{pattern!r} did not appear; output:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def until_status(client: httpx.Client, url: str, status: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        page = client.get(url)
        assert page.status_code == 200, page.text
        if f'id="status">{status}<' in page.text:
            return page.text
        assert time.monotonic() < deadline, f"{url} never became {status}"
        time.sleep(0.1)


def test_demo_ui_serves_the_demo_data_and_resumes_the_waiting_order_from_the_page(
) -> None:
    port = free_port()
    demo = Command("demo", "--ui", "--ui-port", str(port))
    try:
        demo.wait_for("demo OK")
        waiting = demo.wait_for(r"waits for the courier: (http://\S+)").group(1)
        assert waiting.startswith(f"http://127.0.0.1:{port}/ui/executions/")
        with httpx.Client(timeout=10) as client:
            listed = client.get(f"http://127.0.0.1:{port}/ui/executions")
            assert listed.status_code == 200
            assert len(re.findall(r'data-execution="', listed.text)) == 2
            page = until_status(client, waiting, "waiting")
            token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            resumed = client.post(f"{waiting}/resume", data={
                "csrf_token": csrf, "token": token,
                "data": '{"courier": "Test Courier", "tracking": "T-1"}'})
            assert resumed.status_code == 303, resumed.text
            until_status(client, waiting, "completed")
        assert demo.stop() == 0
    finally:
        demo.kill()


def test_without_ui_the_demo_ends_by_telling_how_to_open_the_explorer() -> None:
    proc = subprocess.run([*CLI, "demo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert "flowmonkey demo --ui" in last
    assert "http://127.0.0.1:8080/ui" in last


def test_dev_ui_prints_the_explorer_url_and_serves_it(tmp_path: Path) -> None:
    port = free_port()
    dev = Command("dev", "--data-dir", str(tmp_path / "data"), "--flows-dir", str(FLOWS),
                  "--ui", "--ui-port", str(port), "--quiet")
    try:
        url = dev.wait_for(r"explorer: (http://\S+)").group(1)
        assert url == f"http://127.0.0.1:{port}/ui"
        dev.wait_for("running; Ctrl-C to stop")
        with httpx.Client(timeout=10) as client:
            page = client.get(f"{url}/executions")
            assert page.status_code == 200
            assert "<h1>Executions</h1>" in page.text
        assert dev.stop() == 0
        dev.wait_for("stopped cleanly")
    finally:
        dev.kill()


def test_a_bad_ui_port_is_refused() -> None:
    proc = subprocess.run([*CLI, "demo", "--ui", "--ui-port", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "--ui-port must be from 1 to 65535" in proc.stderr
