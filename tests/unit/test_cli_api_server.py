"""``flowmonkey api --http`` and ``--loop``: what each choice serves with, and a clear
error for a package that is not installed."""

from __future__ import annotations

import pytest

from flowmonkey.cli import api
from flowmonkey.cli.common import CliError


def test_auto_serves_with_httptools_when_installed_else_h11(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert api._http_parser("auto") == "httptools"  # a dependency of FlowMonkey
    assert api._http_parser("httptools") == "httptools"
    assert api._http_parser("h11") == "h11"
    monkeypatch.setattr(api, "_installed", lambda module: False)
    assert api._http_parser("auto") == "h11"
    assert api._http_parser("h11") == "h11"


def test_a_parser_that_is_not_installed_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_installed", lambda module: False)
    with pytest.raises(CliError, match="httptools package is not installed"):
        api._http_parser("httptools")


def test_the_default_loop_is_asyncios_own() -> None:
    assert api._event_loop("asyncio") is None


def test_uvloop_not_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_installed", lambda module: False)
    with pytest.raises(CliError, match="uvloop package is not installed"):
        api._event_loop("uvloop")
