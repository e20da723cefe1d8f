"""``flowmonkey processor`` and snapshots: a Postgres snapshot store when a DSN is set,
``--snapshot-every`` (0 turns them off) and ``--schema``."""

from __future__ import annotations

import argparse

import pytest

from flowmonkey.cli import build_parser, main
from flowmonkey.cli.common import Bundle
from flowmonkey.cli.processor import _Processor
from flowmonkey.cli.settings import settings_from_args
from flowmonkey.processors.snapshots_postgres import PostgresSnapshotStore

DSN = "postgresql://fm:secret@db.invalid:5432/fm"


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["processor", "--kafka-bootstrap", "localhost:9",
                                      *argv])


def _processor(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *argv: str) -> _Processor:
    monkeypatch.delenv("FLOWMONKEY_POSTGRES_DSN", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = _args(*argv)
    return _Processor(args, settings_from_args(args), Bundle())


def test_a_dsn_gives_a_postgres_snapshot_store_in_the_schema(
        monkeypatch: pytest.MonkeyPatch) -> None:
    processor = _processor(monkeypatch, {"FLOWMONKEY_POSTGRES_DSN": DSN}, "--schema", "orders")
    store = processor.snapshots()
    assert isinstance(store, PostgresSnapshotStore)
    assert store.schema == "orders"
    assert processor.describe_snapshots().startswith("snapshots every 5000 events in ")
    assert "secret" not in processor.describe_snapshots()


def test_without_a_dsn_there_are_no_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    processor = _processor(monkeypatch, {})
    assert processor.snapshots() is None
    assert processor.describe_snapshots() == "no snapshots"


def test_snapshot_every_zero_turns_snapshots_off(monkeypatch: pytest.MonkeyPatch) -> None:
    processor = _processor(monkeypatch, {"FLOWMONKEY_POSTGRES_DSN": DSN},
                           "--snapshot-every", "0")
    assert processor.snapshots() is None


def test_the_engine_gets_the_store_and_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    processor = _processor(monkeypatch, {"FLOWMONKEY_POSTGRES_DSN": DSN},
                           "--snapshot-every", "250")
    engine = processor.engine()
    assert isinstance(engine.snapshots, PostgresSnapshotStore)
    assert engine.snapshot_every == 250


@pytest.mark.parametrize(("argv", "message"), [
    (["--snapshot-every", "-1"], "--snapshot-every must be 0 (off) or more, not -1"),
    (["--schema", "no-dashes"], "--schema: invalid schema name"),
])
def test_bad_snapshot_options_are_refused(argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWMONKEY_POSTGRES_DSN", raising=False)
    code = main(["processor", "--kafka-bootstrap", "localhost:9", "--app",
                 "examples/01_quickstart.py", *argv])
    assert code == 2
    assert message in capsys.readouterr().err
