"""Fixtures of the browser tests (see browser_support.py): the ``flowmonkey api``
server (one per session), Playwright driving Debian's Chromium, and a fresh page per
test. A missing browser fails the tests, it does not skip them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.browser_support import CHROMIUM, WAIT_S, Server, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("browser-api")) as started:
        yield started


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Chromium, for one test. Not shared across tests: while Playwright's sync API is
    running it keeps an asyncio loop running on this thread, and the async tests that
    follow in the same session could not start theirs."""
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not Path(path).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium "
                    "(apt-get install chromium), or set FLOWMONKEY_CHROMIUM to a Chromium")
    with sync_playwright() as driver:
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses
        launched = driver.chromium.launch(executable_path=path, headless=True,
                                          args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base_url,
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_S * 1000)
    expect.set_options(timeout=WAIT_S * 1000)  # a loaded machine is slow to update pages
    opened = context.new_page()
    yield opened
    context.close()


