"""Screenshots of the explorer's pages for the README, from the browser tests' setup.

    python -m tests.browser.screenshots [--out docs/images]

Starts ``flowmonkey api`` on the example flows (as tests/browser/conftest.py does),
makes executions in each state (:func:`~tests.browser.browser_support.seed`), logs in
with Debian's Chromium and writes one PNG per page into ``--out``. Nothing is mocked:
the images are the real pages.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, sync_playwright

from tests.browser.browser_support import (
    CHROMIUM,
    WAIT_S,
    Seeded,
    log_in,
    order,
    running_server,
    seed,
)
from tests.process_support import ROOT

VIEWPORT: ViewportSize = {"width": 1280, "height": 760}


def pages(seeded: Seeded) -> list[tuple[str, str, Callable[[Page], None] | None]]:
    """(image name, path, what to do before the shot) of each page shown."""

    def graph_drawn(page: Page) -> None:
        page.locator("svg.flow-graph").first.wait_for()

    def travelled(page: Page) -> None:
        # back to the state after the route step, in view with what it changed
        page.locator("#seq-slider").fill("7")
        page.locator('.state-at[data-seq="7"]').wait_for()
        page.get_by_role("heading", name="Time travel").evaluate(
            "e => { e.scrollIntoView({block: 'start'}); window.scrollBy(0, -8); }")

    return [
        ("explorer-executions", "/ui/executions", None),
        ("explorer-execution-failed", f"/ui/executions/{seeded.failed}", graph_drawn),
        ("explorer-execution-waiting", f"/ui/executions/{seeded.waiting}", graph_drawn),
        ("explorer-time-travel", f"/ui/executions/{seeded.completed}", travelled),
        ("explorer-flow", "/ui/flows/order-processing", graph_drawn),
        ("explorer-health", "/ui/health", None),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which(CHROMIUM) or CHROMIUM
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server, \
            sync_playwright() as driver:
        seeded = seed(server)
        for n in range(3):  # a fuller list
            server.start("order-processing", order(f"A-{200 + n}", shipping="standard"))
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(base_url=server.base_url, viewport=VIEWPORT)
        context.set_default_timeout(WAIT_S * 1000)
        page = context.new_page()
        log_in(page)
        for name, path, ready in pages(seeded):
            response = page.goto(path)
            if response is None or response.status != 200:
                print(f"skipped {name}: {path} answered "
                      f"{response.status if response else 'nothing'}")
                continue
            if ready is not None:
                ready(page)
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"wrote {out / f'{name}.png'}")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
