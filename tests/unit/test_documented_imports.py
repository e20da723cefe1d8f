"""Every import the documentation shows works: the names the README's Python code
blocks import, and those the examples and the deploy scripts import, exist where they
are imported from, so documentation and package cannot drift apart. The projections
package exports its public names without loading asyncpg until one needs it."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
# an import statement on its own lines (a parenthesised one may span several)
_IMPORT = re.compile(r"^[ \t]*(from[ \t]+\S+[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)"
                     r"|import[ \t][^\n]*)", re.MULTILINE)


def _parse(source: str) -> ast.AST:
    """The block as a module; top-level ``await``/``async with`` are allowed."""
    tree = compile(source, "<block>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                   dont_inherit=True)
    assert isinstance(tree, ast.AST)
    return tree


def _imports(source: str) -> list[tuple[str, str | None]]:
    """(module, name) for each ``from module import name``; (module, None) for each
    ``import module``. A block that is not a whole program is read statement by
    statement."""
    try:
        trees = [_parse(source)]
    except SyntaxError:
        trees = [_parse(m.group(1).strip()) for m in _IMPORT.finditer(source)]
    found: list[tuple[str, str | None]] = []
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found += [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [(alias.name, None) for alias in node.names]
    return found


def _ours(found: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    return [(m, n) for m, n in found if m == "flowmonkey" or m.startswith("flowmonkey.")]


def _readme_imports() -> list[tuple[str, str | None]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return _ours([i for block in _BLOCK.findall(text) for i in _imports(block)])


def _script_imports() -> list[tuple[str, str | None]]:
    files = sorted([*(ROOT / "examples").glob("*.py"), *(ROOT / "deploy").glob("*.py")])
    return _ours([i for f in files for i in _imports(f.read_text(encoding="utf-8"))])


def _check(module: str, name: str | None) -> None:
    imported = importlib.import_module(module)
    if name is not None and name != "*":
        assert hasattr(imported, name), f"`from {module} import {name}` fails"


def test_the_readme_imports_are_read() -> None:
    found = _readme_imports()
    assert ("flowmonkey.projections", "PostgresProjection") in found
    assert ("flowmonkey.log", "KafkaLog") in found
    assert ("flowmonkey", "Engine") in found


@pytest.mark.parametrize(("module", "name"), sorted(set(_readme_imports()), key=str))
def test_every_name_the_readme_imports_exists(module: str, name: str | None) -> None:
    _check(module, name)


@pytest.mark.parametrize(("module", "name"), sorted(set(_script_imports()), key=str))
def test_every_name_the_examples_import_exists(module: str, name: str | None) -> None:
    _check(module, name)


def test_the_projections_package_exports_its_public_names() -> None:
    import flowmonkey.projections as projections
    from flowmonkey.projections.base import Projection
    from flowmonkey.projections.memory import MemoryProjection
    from flowmonkey.projections.postgres import PostgresProjection
    from flowmonkey.projections.service import ProjectorService

    assert projections.MemoryProjection is MemoryProjection
    assert projections.PostgresProjection is PostgresProjection
    assert projections.Projection is Projection
    assert projections.ProjectorService is ProjectorService
    for name in projections.__all__:
        assert getattr(projections, name) is not None
    with pytest.raises(AttributeError, match="NoSuchProjection"):
        projections.NoSuchProjection  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_projections_package_loads_no_postgres_driver() -> None:
    code = ("import sys, flowmonkey, flowmonkey.projections\n"
            "assert 'asyncpg' not in sys.modules, 'asyncpg loaded'\n"
            "from flowmonkey.projections import MemoryProjection, Projection\n"
            "assert 'asyncpg' not in sys.modules, 'asyncpg loaded'\n"
            "from flowmonkey.projections import PostgresProjection\n"
            "assert 'asyncpg' in sys.modules\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False, env=env)
    assert result.returncode == 0, result.stderr
