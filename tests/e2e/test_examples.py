"""Every example in examples/ runs as a script and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))


def test_every_guide_section_has_an_example() -> None:
    names = {p.stem.split("_", 1)[1] for p in EXAMPLES}
    assert {"quickstart", "retry", "conditional", "switch", "subflow", "wait_and_resume",
            "cancellation", "idempotency", "tenancy", "timeouts", "pipes_and_wal",
            "class_handlers", "event_dispatcher", "durable_restart"} <= names


NEEDS_KAFKA = {"19_topic_trigger"}
"""Examples that need a broker: they get the test suite's."""


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(example: Path, request: pytest.FixtureRequest) -> None:
    env = dict(os.environ)
    if example.stem in NEEDS_KAFKA:
        env["FLOWMONKEY_KAFKA_BOOTSTRAP"] = request.getfixturevalue("kafka_bootstrap")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(example)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False, env=env)
    took = time.perf_counter() - started
    assert proc.returncode == 0, (
        f"{example.name} exited {proc.returncode} after {took:.1f}s\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    last = proc.stdout.strip().splitlines()[-1]
    assert last.endswith("OK"), f"{example.name} did not report OK: {last!r}"
    assert "Traceback" not in proc.stderr
    assert (example.read_text().lstrip().startswith('"""')), "each example has a docstring"
