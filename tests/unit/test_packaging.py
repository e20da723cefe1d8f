"""``pyproject.toml``'s metadata in the form current build backends accept without
deprecation warnings: the license as an SPDX expression (PEP 639), which needs
setuptools 77 or later in the build requirements."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pyproject() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text())


def test_the_license_is_an_spdx_expression_not_a_table() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == "MIT"
    classifiers = project.get("classifiers", [])
    assert isinstance(classifiers, list)
    # a License classifier next to an expression is an error for setuptools >= 77
    assert not [c for c in classifiers if str(c).startswith("License ::")]


def test_the_build_requires_a_setuptools_that_reads_spdx_licenses() -> None:
    build = _pyproject()["build-system"]
    assert isinstance(build, dict)
    [setuptools] = [r for r in build["requires"] if str(r).startswith("setuptools")]
    found = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", str(setuptools))
    assert found is not None, setuptools
    assert int(found.group(1)) >= 77
