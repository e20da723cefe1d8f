"""``flowmonkey trigger-consumer`` refuses bad input before connecting to anything:
no Kafka, no app, no topic triggers, an unknown or non-topic --trigger, an invalid
definition (every problem named), bad limits. Exit code 2, a message saying what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmonkey.cli import main

APP = '''
triggers = [
    {"id": "orders-in", "kind": "topic", "flowId": "order", "topic": {"topic": "shop.orders"}},
    {"id": "nightly", "kind": "schedule", "flowId": "report",
     "schedule": {"cron": "0 3 * * *"}},
]
'''


@pytest.fixture
def app(tmp_path: Path) -> str:
    path = tmp_path / "app.py"
    path.write_text(APP, encoding="utf-8")
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["trigger-consumer", *argv])
    return code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    # set, but never reached: every case fails before connecting
    monkeypatch.setenv("FLOWMONKEY_KAFKA_BOOTSTRAP", "127.0.0.1:1")


def test_without_kafka_it_says_to_set_it(monkeypatch: pytest.MonkeyPatch, app: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FLOWMONKEY_KAFKA_BOOTSTRAP")
    code, err = _run(capsys, "--app", app)
    assert code == 2
    assert "topic triggers consume Kafka topics: set FLOWMONKEY_KAFKA_BOOTSTRAP" in err


def test_without_an_app_it_asks_for_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys)
    assert code == 2
    assert "give the triggers with --app MODULE" in err


def test_an_app_without_topic_triggers_is_refused(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "schedules.py"
    path.write_text('triggers = [{"id": "n", "kind": "schedule", "flowId": "f", '
                    '"schedule": {"cron": "0 3 * * *"}}]\n', encoding="utf-8")
    code, err = _run(capsys, "--app", str(path))
    assert code == 2
    assert "no topic triggers to consume in --app" in err


def test_an_unknown_or_non_topic_trigger_is_named(app: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--app", app, "--trigger", "nope")
    assert code == 2
    assert "no trigger 'nope' in --app (it has nightly, orders-in)" in err
    code, err = _run(capsys, "--app", app, "--trigger", "nightly")
    assert code == 2
    assert "not topic triggers: 'nightly' (schedule)" in err


def test_every_problem_of_an_invalid_definition_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.py"
    path.write_text('triggers = [{"id": "a", "kind": "topic", "flowId": "f"}, '
                    '{"id": "b", "kind": "topic", "flowId": "f", "topic": {"topic": ""}}]\n',
                    encoding="utf-8")
    code, err = _run(capsys, "--app", str(path))
    assert code == 2
    assert "trigger 'a': " in err
    assert "a topic trigger needs its settings under 'topic'" in err
    assert "trigger 'b': topic.topic: " in err


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--max-value-bytes", "0", "--max-value-bytes must be from 1 to 921600, not 0"),
    ("--max-poll-records", "0", "--max-poll-records must be from 1 to 10000, not 0"),
    ("--progress-every", "0", "--progress-every must be more than 0 seconds"),
])
def test_bad_limits_are_refused(app: str, option: str, value: str, message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--app", app, option, value)
    assert code == 2
    assert message in err
