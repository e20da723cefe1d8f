"""The pure layers stay light: importing the kernel, the model or the events (or the
package root, whose names load on first use) loads no client library and no asyncio.

Each import runs in a fresh interpreter, since this one has loaded everything by now.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("aiokafka", "httpx", "prometheus_client", "jsonschema", "asyncpg", "fastapi",
         "asyncio")

LIGHT = [
    "flowmonkey.kernel.decide",
    "flowmonkey.kernel",
    "flowmonkey.kernel.state_codec",
    "flowmonkey.model",
    "flowmonkey.events",
    "flowmonkey",
    "flowmonkey.log",
]

LAZY_PACKAGES = [
    "flowmonkey",
    "flowmonkey.api",
    "flowmonkey.handlers",
    "flowmonkey.log",
    "flowmonkey.metrics",
    "flowmonkey.projections",
    "flowmonkey.testing",
]


def loaded_after(statement: str) -> list[str]:
    """The HEAVY modules loaded by ``statement`` in a fresh interpreter."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    code = (f"import sys\n{statement}\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_importing_the_kernel_decider_loads_no_client_library_nor_asyncio() -> None:
    assert loaded_after("import flowmonkey.kernel.decide") == []


@pytest.mark.parametrize("module", LIGHT)
def test_importing_a_pure_package_loads_no_client_library_nor_asyncio(module: str) -> None:
    assert loaded_after(f"import {module}") == []


def test_the_public_names_still_import_from_the_root() -> None:
    loaded_after("from flowmonkey import Engine, Flow, handler")  # in a fresh interpreter too
    import flowmonkey
    from flowmonkey import Engine, Flow, handler
    from flowmonkey.engine import Engine as EngineItself

    assert Engine is EngineItself
    assert callable(handler)
    assert Flow.__name__ == "Flow"
    assert "Engine" in dir(flowmonkey)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_name_a_package_exports_resolves(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        module.NoSuchName  # noqa: B018 (the lookup is the test)
