"""Long-running CLI processes in tests: started with their output in a file, waited
for by what they print, stopped at the end of the test (the ``running`` fixture,
loaded for every test module by tests/conftest.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Service:
    """A long-running CLI process whose output goes to a file (its pipe never fills)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], out: Path) -> None:
        self.name = name
        self.out = out
        with out.open("w") as sink:
            self.popen = subprocess.Popen(args, env=env, cwd=ROOT, stdout=sink,
                                          stderr=subprocess.STDOUT, text=True)

    def text(self) -> str:
        return self.out.read_text()

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.text():
            assert self.popen.poll() is None, f"{self.name} exited:\n{self.text()}"
            assert time.monotonic() < deadline, f"{self.name} never said {text!r}:\n" \
                f"{self.text()}"
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.popen)


def stop_process(popen: subprocess.Popen[str]) -> None:
    """SIGTERM, and SIGKILL if it has not ended 30 s later."""
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(10)


@pytest.fixture
def running() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()
