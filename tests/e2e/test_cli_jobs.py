"""`flowmonkey jobs list | show` on the durable embedded log: the jobs are rebuilt from
the log (as the engine's projection is at start) and printed as text or JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flowmonkey import Engine, HandlerParams, StepResult, handler
from flowmonkey.events import names as n
from flowmonkey.log import EmbeddedLog
from tests.behaviour.flows import flow, step
from tests.behaviour.job_commands import JobCommands

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "flowmonkey.cli"]


@handler("export", stateful=True)
async def export(p: HandlerParams) -> StepResult:
    raise AssertionError("a worker runs it")


@handler("import", stateful=True)
async def import_(p: HandlerParams) -> StepResult:
    raise AssertionError("a worker runs it")


FLOWS = [flow("export", step("x", "export", output_key="exported")),
         flow("import", step("i", "import", output_key="imported"))]


def flowmonkey(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False, env=env)


async def _fill(data_dir: Path) -> dict[str, str]:
    """Three jobs on the embedded log: an export completed by w-1, an export claimed by
    w-2 with progress, an import pending. Their job ids by that name."""
    engine = Engine(flows=FLOWS, handlers=[export, import_], log=EmbeddedLog(path=data_dir),
                    workers=0)
    ids: dict[str, str] = {}
    async with engine:
        jobs = JobCommands(engine)
        for name, flow_id in (("done", "export"), ("running", "export"),
                              ("waiting", "import")):
            created = await engine.create(flow_id, {"rows": 3})
            ids[name] = (await jobs.pending(created.execution.id))["job_id"]
            ids[f"{name}-execution"] = created.execution.id
        done = await jobs.claim(ids["done-execution"], ids["done"], "w-1")
        await jobs.write(n.CMD_JOB_COMPLETE, done, output={"file": "a.csv"})
        running = await jobs.claim(ids["running-execution"], ids["running"], "w-2")
        await jobs.write(n.CMD_JOB_PROGRESS, running, percent=40, message="four of ten")
        await engine.wait(ids["done-execution"], timeout_s=10)
    return ids


async def test_jobs_list_and_show_read_the_embedded_logs_jobs(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    ids = await _fill(data_dir)
    where = ("--data-dir", str(data_dir))

    listed = flowmonkey("jobs", "list", *where)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[-1] == "3 jobs"
    # newest first
    assert [line.split()[0] for line in lines[:3]] == [ids["waiting"], ids["running"],
                                                       ids["done"]]
    assert f"claimed    export  execution {ids['running-execution']}  attempt 1  epoch 1" \
           "  worker w-2  40%" in listed.stdout

    claimed = flowmonkey("jobs", "list", *where, "--status", "claimed", "--json")
    assert claimed.returncode == 0, claimed.stderr
    body = json.loads(claimed.stdout)
    assert [j["jobId"] for j in body["items"]] == [ids["running"]]
    assert body["items"][0]["progressMessage"] == "four of ten"
    assert body["nextCursor"] is None
    by_type = json.loads(flowmonkey("jobs", "list", *where, "--type", "import",
                                    "--json").stdout)
    assert [j["jobId"] for j in by_type["items"]] == [ids["waiting"]]
    by_worker = flowmonkey("jobs", "list", *where, "--worker", "w-1")
    assert by_worker.stdout.splitlines()[0].split()[0] == ids["done"]
    by_execution = flowmonkey("jobs", "list", *where, "--execution",
                              ids["waiting-execution"])
    assert by_execution.stdout.splitlines()[-1] == "1 job"
    none = flowmonkey("jobs", "list", *where, "--worker", "nobody")
    assert (none.returncode, none.stdout) == (0, "no jobs match\n")

    # a full page prints the cursor of the next one; following it gives the rest
    first = flowmonkey("jobs", "list", *where, "--limit", "2")
    cursor = first.stdout.splitlines()[-1].removeprefix("more: --cursor ")
    rest = flowmonkey("jobs", "list", *where, "--limit", "2", "--cursor", cursor)
    assert rest.stdout.splitlines() == [rest.stdout.splitlines()[0], "1 job"]
    assert rest.stdout.split()[0] == ids["done"]

    shown = flowmonkey("jobs", "show", ids["done"], *where)
    assert shown.returncode == 0, shown.stderr
    assert "status     completed" in shown.stdout
    assert 'output     {"file": "a.csv"}' in shown.stdout
    assert 'input      {"rows": 3}' in shown.stdout
    as_json = json.loads(flowmonkey("jobs", "show", ids["done"], *where, "--json").stdout)
    assert (as_json["status"], as_json["workerId"], as_json["output"]) == (
        "completed", "w-1", {"file": "a.csv"})
    assert as_json["endedAt"].endswith("Z")


async def test_jobs_commands_refuse_bad_input_clearly(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    await _fill(data_dir)
    where = ("--data-dir", str(data_dir))

    unknown = flowmonkey("jobs", "show", "job-nope", *where)
    assert unknown.returncode == 1
    assert "error: job 'job-nope' not found" in unknown.stderr
    cursor = flowmonkey("jobs", "list", *where, "--cursor", "garbage")
    assert cursor.returncode == 2
    assert "invalid pagination cursor" in cursor.stderr
    status = flowmonkey("jobs", "list", *where, "--status", "sleeping")
    assert status.returncode == 2
    assert "invalid choice: 'sleeping'" in status.stderr
    limit = flowmonkey("jobs", "list", *where, "--limit", "0")
    assert limit.returncode == 2
    assert "must be 1 to 1000" in limit.stderr
    missing = flowmonkey("jobs", "list", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "data directory not found" in missing.stderr
    nothing = flowmonkey("jobs", "list")
    assert nothing.returncode == 2
    assert "no jobs to read" in nothing.stderr
