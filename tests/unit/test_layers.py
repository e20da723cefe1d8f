"""The package layers: no module imports a package above its own.

``LAYERS`` lists flowmonkey's packages (and the root modules) lowest first; a module
may import from its own layer and the ones below it, never from one above. The check
walks the AST of every module under ``flowmonkey/``: top-level imports and the ones
inside functions alike (those run too, only later). Imports under
``if TYPE_CHECKING:`` are allowed to point upwards: they never run, they only give
annotations a name.

The root package holds only the public face (``__init__``, ``engine``, ``errors``,
``settings``, ``py.typed``) and packages. Packages of ``LAYERS`` that do not exist
(yet) are skipped; a package that is in no layer fails the test until it is placed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "flowmonkey"

# lowest first; the names of one entry share a layer
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("model",),
    ("log",),
    ("events",),
    ("kernel",),
    ("handlers",),
    ("forms",),  # the public side of forms: parsing, sanitising, validating, captcha
    ("metrics",),
    ("pg",),
    ("processors",),
    ("projections",),
    ("jobs",),
    ("runtime",),
    ("__init__", "engine", "settings"),  # the root public face
    ("api",),
    ("testing",),
    ("cli",),
]

PUBLIC_ROOT = {"__init__.py", "engine.py", "errors.py", "settings.py", "py.typed"}

LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module under flowmonkey/."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def unit_of(dotted: str) -> str:
    """The layer unit a dotted module name belongs to: its top-level package or root
    module under flowmonkey (``__init__`` for the package root itself)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def under_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted target) of each flowmonkey import that runs (skips the bodies of
    ``if TYPE_CHECKING:``)."""

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and under_type_checking(child):
                for other in child.orelse:
                    yield other
                    yield from walk(other)
                continue
            yield child
            yield from walk(child)

    for node in walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base.pop()
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "flowmonkey":  # from flowmonkey import engine / Engine
                for alias in node.names:
                    sub = alias.name
                    known = (PACKAGE / sub).is_dir() or (PACKAGE / f"{sub}.py").exists()
                    yield node.lineno, f"flowmonkey.{sub}" if known else target
            else:
                yield node.lineno, target


def test_the_layers_name_each_package_once() -> None:
    names = [name for layer in LAYERS for name in layer]
    assert len(names) == len(set(names))
    assert LAYERS[-1] == ("cli",)


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    unplaced = sorted(packages - set(LEVEL))
    assert not unplaced, f"packages in no layer (add them to LAYERS): {unplaced}"


def test_the_root_holds_only_the_public_face() -> None:
    stray = sorted(
        p.name for p in PACKAGE.iterdir()
        if p.is_file() and p.name not in PUBLIC_ROOT
        and not p.name.endswith((".pyc", ".pyo")))
    folders = sorted(
        p.name for p in PACKAGE.iterdir()
        if p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists())
    assert not stray, f"modules at the package root outside the public face: {stray}"
    assert not folders, f"folders at the package root that are not packages: {folders}"


@pytest.mark.parametrize(("module", "path"),
                         [pytest.param(m, p, id=m) for m, p in modules()])
def test_no_module_imports_a_package_above_its_own(module: str, path: Path) -> None:
    own = unit_of(module)
    assert own in LEVEL, f"{module} is in no layer (add {own!r} to LAYERS)"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    above = []
    for line, target in imported(tree, module, path.name == "__init__.py"):
        if target != "flowmonkey" and not target.startswith("flowmonkey."):
            continue
        unit = unit_of(target)
        if unit not in LEVEL:
            above.append(f"line {line}: {target} ({unit} is in no layer)")
        elif unit != own and LEVEL[unit] > LEVEL[own]:
            above.append(f"line {line}: {target} ({unit} is above {own})")
    assert not above, f"{module} imports upwards:\n" + "\n".join(above)
