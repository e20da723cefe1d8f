"""``flowmonkey log check`` and ``flowmonkey log repair`` on a durable embedded log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from flowmonkey.cli import main
from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec
from tests.faults.support import placeholder_bytes


def make_log(root: Path, count: int = 6) -> None:
    async def work() -> None:
        async with EmbeddedLog(root, fsync=False) as log:
            await log.create_topics([TopicSpec("events", 1), TopicSpec("commands", 1)])
            for i in range(count):
                await log.append([OutRecord("events", b"value-%d" % i, key=b"exec-%d" % i),
                                  OutRecord("commands", b"command-%d" % i)],
                                 commit_group="processor",
                                 commit_offsets={("commands", 0): i + 1})

    asyncio.run(work())


def flip_middle_record(root: Path) -> Path:
    [segment] = sorted((root / "events" / "0").glob("*.log"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x40
    segment.write_bytes(bytes(data))
    return segment


def test_check_on_an_intact_log_reports_each_partition_and_exits_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_log(tmp_path)

    code = main(["log", "check", "--data-dir", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0
    assert "events/0" in out
    assert "no damage" in out


def test_check_names_the_damaged_file_and_exits_1_and_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_log(tmp_path)
    segment = flip_middle_record(tmp_path)
    before = segment.read_bytes()

    code = main(["log", "check", "--data-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 1
    assert str(segment) in captured.out
    assert "DAMAGED" in captured.out
    assert f"flowmonkey log repair --data-dir {tmp_path}" in captured.err
    assert segment.read_bytes() == before


def test_check_json_lists_damaged_ranges_and_offsets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_log(tmp_path)
    segment = flip_middle_record(tmp_path)

    code = main(["log", "check", "--data-dir", str(tmp_path), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["ok"] is False
    [events] = [p for p in report["partitions"] if p["topic"] == "events"]
    [damage] = events["damaged_ranges"]
    assert damage["file"] == str(segment)
    assert damage["start"] <= len(segment.read_bytes()) // 2 < damage["end"]


def test_repair_keeps_the_intact_records_and_prints_what_it_did(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_log(tmp_path)
    segment = flip_middle_record(tmp_path)
    size = segment.stat().st_size

    code = main(["log", "repair", "--data-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 0
    [aside] = sorted(segment.parent.glob("*.damaged-*"))
    assert f"to {aside}" in captured.out
    assert "kept 5 intact record(s)" in captured.out
    assert "scanning" in captured.err  # progress goes to stderr
    placeholders = placeholder_bytes(segment)  # one at the damaged record's offset
    assert placeholders > 0
    assert aside.stat().st_size + segment.stat().st_size - placeholders == size
    assert main(["log", "check", "--data-dir", str(tmp_path)]) == 0


def test_without_a_data_directory_it_says_what_to_pass(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWMONKEY_DATA_DIR", raising=False)

    assert main(["log", "check"]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(["log", "repair", "--data-dir", str(tmp_path / "nothing")]) == 2
    assert "not an embedded log's data directory" in capsys.readouterr().err


def test_a_directory_in_use_is_refused_with_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_log(tmp_path)

    async def check_while_open() -> int:
        async with EmbeddedLog(tmp_path):
            return main(["log", "repair", "--data-dir", str(tmp_path)])

    assert asyncio.run(check_while_open()) == 1
    err = capsys.readouterr().err
    assert "already in use" in err
    assert "stop the process" in err


def test_a_service_on_a_damaged_log_is_told_to_check_and_repair(tmp_path: Path) -> None:
    from flowmonkey.cli.settings import log_unreachable
    from flowmonkey.errors import LogError
    from flowmonkey.settings import Settings

    damaged = LogError("the embedded log at … cannot be opened", code="LOG_DAMAGED")

    error = log_unreachable(damaged, Settings(data_dir=tmp_path))

    assert error.exit_code == 1
    assert error.hint is not None
    assert f"flowmonkey log check --data-dir {tmp_path}" in error.hint
    assert "flowmonkey log repair" in error.hint
