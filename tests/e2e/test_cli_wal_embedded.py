"""`flowmonkey wal` on the durable embedded log: ``list`` rebuilds the WAL from the log
(as the engine does at start) with the app's tables; ``replay`` and ``compact`` say
why there is nothing stored to work on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flowmonkey import Engine, ExecutionStatus
from flowmonkey.handlers import builtin
from flowmonkey.log import EmbeddedLog

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "flowmonkey.cli"]

APP = '''
from flowmonkey import ColumnDef, TableDef

tables = [TableDef(id="orders", columns=[ColumnDef(id="sku", required=True),
                                         ColumnDef(id="qty", type="number")])]
flows = [{
    "id": "piped", "version": "1.0.0", "initialStepId": "a",
    "steps": {"a": {"id": "a", "type": "transform", "input": {"type": "full"},
                    "config": {"expression": "input"}, "outputKey": "a",
                    "transitions": {"onSuccess": None}}},
    "pipes": [{"id": "to-orders", "stepId": "a", "tableId": "orders",
               "mappings": [{"sourcePath": "result.sku", "columnId": "sku"},
                            {"sourcePath": "result.qty", "columnId": "qty"}]}],
}]
'''


def flowmonkey(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False, env=env)


async def _fill(data_dir: Path) -> str:
    """Two executions on the embedded log: one row lands, one (no sku) goes to the WAL.
    The failing execution's id."""
    scope: dict[str, object] = {}
    exec(APP, scope)  # the app the CLI is given
    engine = Engine(flows=scope["flows"], tables=scope["tables"],  # type: ignore[arg-type]
                    handlers=builtin(), log=EmbeddedLog(path=data_dir))
    async with engine:
        good = await engine.create("piped", {"sku": "BANANA", "qty": 2})
        bad = await engine.create("piped", {"qty": 3})
        for created in (good, bad):
            done = await engine.wait(created.execution.id, timeout_s=10)
            assert done.status == ExecutionStatus.COMPLETED
        [entry] = await engine.projection.wal_pending()
        assert entry.execution_id == bad.execution.id
    return bad.execution.id


async def test_wal_list_rebuilds_the_embedded_logs_wal_with_the_apps_tables(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    app_file = tmp_path / "walapp.py"
    app_file.write_text(APP)
    failing = await _fill(data_dir)

    listed = flowmonkey("wal", "list", "--data-dir", str(data_dir), "--app", str(app_file))
    assert listed.returncode == 0, listed.stderr
    assert f"table orders  execution {failing}  piped/a pipe to-orders  attempts 0" \
        in listed.stdout
    assert 'column "sku" is required' in listed.stdout
    assert "1 pending entry" in listed.stdout

    as_json = flowmonkey("wal", "list", "--data-dir", str(data_dir), "--app", str(app_file),
                         "--format", "json")
    [item] = json.loads(as_json.stdout)
    assert (item["execution_id"], item["data"], item["status"]) == (
        failing, {"sku": None, "qty": 3}, "pending")

    without_tables = flowmonkey("wal", "list", "--data-dir", str(data_dir))
    assert without_tables.returncode == 0, without_tables.stderr
    assert "2 pending entries" in without_tables.stdout
    assert "no tables given (--app or --flows-dir)" in without_tables.stderr


def test_wal_replay_and_compact_on_the_embedded_log_say_what_to_do(tmp_path: Path) -> None:
    replay = flowmonkey("wal", "replay", "--data-dir", str(tmp_path))
    assert replay.returncode == 2
    assert "the embedded log's WAL is not stored" in replay.stderr
    assert "restart the engine" in replay.stderr
    assert "wal list --data-dir DIR --app MODULE" in replay.stderr
    compact = flowmonkey("wal", "compact", "--data-dir", str(tmp_path))
    assert compact.returncode == 2
    assert "nothing to compact" in compact.stderr
    for proc in (replay, compact):
        assert "Traceback" not in proc.stderr


def test_wal_without_a_dsn_or_a_data_dir_names_both(tmp_path: Path) -> None:
    proc = flowmonkey("wal", "list")
    assert proc.returncode == 2
    assert "--postgres-dsn" in proc.stderr
    assert "--data-dir DIR" in proc.stderr
    missing = flowmonkey("wal", "list", "--data-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "data directory not found" in missing.stderr
