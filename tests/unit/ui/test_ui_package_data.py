"""The explorer's templates and static files ship in the package: pyproject's
package-data globs match every one of them (a wheel without them serves no page)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "flowmonkey"


def test_every_template_and_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["flowmonkey"]
    shipped = {p for pattern in globs for p in PACKAGE.glob(pattern) if p.is_file()}
    assets = [p for folder in ("templates", "static")
              for p in (PACKAGE / "api" / "ui" / folder).rglob("*") if p.is_file()]
    assert assets
    missing = sorted(str(p.relative_to(PACKAGE)) for p in assets if p not in shipped)
    assert not missing, f"not in package-data: {missing}"
    assert PACKAGE / "api" / "ui" / "static" / "htmx.min.js" in shipped
    assert PACKAGE / "api" / "ui" / "templates" / "base.html" in shipped
