"""Structured logs of the service commands: ``--log-format json`` / FLOWMONKEY_LOG_FORMAT."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson
import pytest

from flowmonkey.cli import service as cli_service
from flowmonkey.cli.common import CliError
from flowmonkey.cli.service import JsonLogFormatter, say
from flowmonkey.cli.settings import settings_from_args


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("flowmonkey.processor", logging.WARNING, __file__, 1,
                               message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_record_is_one_json_object_with_its_fields_and_extras() -> None:
    line = JsonLogFormatter().format(_record("partition %d stopped", 3, partition=3,
                                             offset=17))
    doc = orjson.loads(line)
    assert "\n" not in line
    assert (doc["level"], doc["logger"], doc["message"]) == (
        "WARNING", "flowmonkey.processor", "partition 3 stopped")
    assert (doc["partition"], doc["offset"]) == (3, 17)
    assert doc["ts"].endswith("+00:00")
    assert set(doc) == {"ts", "level", "logger", "message", "partition", "offset"}


def test_an_exception_goes_in_its_own_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    doc = orjson.loads(JsonLogFormatter().format(record))
    assert doc["message"] == "failed"
    assert "ValueError: boom" in doc["exception"]


def test_a_value_json_cannot_hold_is_written_as_text() -> None:
    doc = orjson.loads(JsonLogFormatter().format(_record("x", path=object)))
    assert doc["path"] == "<class 'object'>"


def _log_format(given: str | None) -> str:
    return settings_from_args(argparse.Namespace(log_format=given)).log_format


def test_the_option_wins_over_the_variable_which_wins_over_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLOWMONKEY_LOG_FORMAT", raising=False)
    assert _log_format(None) == "text"
    monkeypatch.setenv("FLOWMONKEY_LOG_FORMAT", " JSON ")
    assert _log_format(None) == "json"
    assert _log_format("text") == "text"


def test_a_bad_variable_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWMONKEY_LOG_FORMAT", "xml")
    with pytest.raises(CliError, match="FLOWMONKEY_LOG_FORMAT must be one of text, json"):
        _log_format(None)


def test_progress_lines_follow_the_format(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_service, "_format", "text")
    say("projector", "caught up")
    assert capsys.readouterr().out == "projector: caught up\n"
    monkeypatch.setattr(cli_service, "_format", "json")
    say("projector", "caught up")
    doc = orjson.loads(capsys.readouterr().out)
    assert (doc["level"], doc["logger"], doc["message"]) == (
        "INFO", "flowmonkey.projector", "caught up")
