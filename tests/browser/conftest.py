"""Fixtures of the browser tests (see browser_support.py): the ``flowmonkey api``
server (one per session), Playwright driving Debian's Chromium, and a fresh page per
test. A missing browser fails the tests, it does not skip them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.browser.browser_support import (
    CHROMIUM,
    START_TIMEOUT_S,
    WAIT_S,
    Server,
    free_port,
    server_env,
)
from tests.process_support import ROOT, stop_process


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser-api")
    port = free_port()
    out = tmp / "api.log"
    args = [sys.executable, "-m", "flowmonkey.cli", "api", "--port", str(port),
            "--app", str(ROOT / "examples" / "flows" / "approval.py"),
            "--flows-dir", str(ROOT / "examples" / "flows")]
    with out.open("w") as sink:
        process = subprocess.Popen(args, cwd=ROOT, env=server_env(tmp / "data"), stdout=sink,
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


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not Path(path).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium "
                    "(apt-get install chromium), or set FLOWMONKEY_CHROMIUM to a Chromium")
    # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start
    launched = playwright.chromium.launch(executable_path=path, headless=True,
                                          args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base_url,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_S * 1000)
    opened = context.new_page()
    yield opened
    context.close()


