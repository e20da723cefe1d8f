"""``flowmonkey validate`` on triggers and ``flowmonkey triggers``, run as real
subprocesses."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import assert_no_traceback, flowmonkey

FLOW = """\
id: greet
version: "1"
initialStepId: hello
steps:
  hello:
    id: hello
    type: transform
    config: {}
    input: {type: full}
    outputKey: out
    transitions: {}
triggers:
  - id: nightly
    kind: schedule
    flowId: greet
    schedule: {cron: "30 2 * * *", timezone: Europe/Berlin}
"""

HOOKS = """\
triggers:
  - id: hook
    kind: webhook
    flowId: greet
    webhook: {secret: gh-secret, deliveryHeader: X-GitHub-Delivery}
"""

BAD = """\
triggers:
  - id: broken
    kind: schedule
    flowId: greet
    schedule: {cron: "* * *", timezone: Nowhere/Special}
  - id: stray
    kind: webhook
    flowId: missing
    webhook: {secret: s}
"""


def test_validate_reports_triggers(tmp_path: Path) -> None:
    (tmp_path / "greet.yaml").write_text(FLOW)
    (tmp_path / "hooks.yaml").write_text(HOOKS)
    proc = flowmonkey("validate", "greet.yaml", "hooks.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK   greet.yaml: trigger nightly (schedule -> greet)" in proc.stdout
    assert "OK   hooks.yaml: trigger hook (webhook -> greet)" in proc.stdout
    assert "all 2 file(s) valid" in proc.stdout


def test_validate_names_each_bad_trigger_and_field(tmp_path: Path) -> None:
    (tmp_path / "greet.yaml").write_text(FLOW)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "stray.yaml").write_text(BAD.split("  - id: stray")[0].replace(
        "broken", "fine").replace('"* * *"', '"0 * * * *"').replace("Nowhere/Special", "UTC")
        + "  - id: stray" + BAD.split("  - id: stray")[1])
    proc = flowmonkey("validate", "greet.yaml", "bad.yaml", "stray.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    err = proc.stderr
    assert "trigger 'broken': schedule.cron: cron '* * *' has 3 fields" in err
    assert "trigger 'broken': schedule.timezone: unknown timezone 'Nowhere/Special'" in err
    assert "FAIL stray.yaml: triggers" in err
    assert "trigger 'stray': flowId: flow 'missing' is not registered (registered flows: " \
           "greet)" in err
    assert "2 of 3 file(s) invalid" in err


def test_triggers_next_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "greet.yaml").write_text(FLOW)
    proc = flowmonkey("triggers", "next", "nightly", "--file", "greet.yaml", "--count", "3",
                      "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json

    answer = json.loads(proc.stdout)
    assert (answer["triggerId"], answer["timezone"], len(answer["times"])) == (
        "nightly", "Europe/Berlin", 3)
    # 02:30 in Berlin is 00:30 or 01:30 UTC
    assert all(t[11:16] in ("00:30", "01:30") for t in answer["times"]), answer
    text = flowmonkey("triggers", "next", "nightly", "--file", "greet.yaml", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("nightly: 30 2 * * * in Europe/Berlin")
    other = flowmonkey("triggers", "next", "hook", "--file", "greet.yaml", cwd=tmp_path)
    assert other.returncode == 1
    assert "trigger 'hook' is not defined there (triggers: nightly)" in other.stderr
