"""``flowmonkey validate`` on triggers and ``flowmonkey triggers``, run as real
subprocesses."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import assert_no_traceback, flowmonkey
from tests.unit.api_support import eventually

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


HOOK_DEF = {"id": "hook", "kind": "webhook", "flowId": "greet", "tenantId": "acme",
            "webhook": {"secret": "gh-secret"}}
NIGHTLY_DEF = {"id": "nightly", "kind": "schedule", "flowId": "greet",
               "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}}


async def _engine_run(data_dir: Path, fire: bool = False) -> None:
    """An engine on the durable embedded log with the two triggers; ``fire``: one
    manual fire of the webhook."""
    from flowmonkey import Engine
    from flowmonkey.handlers import builtin
    from flowmonkey.log import EmbeddedLog

    flow = {"id": "greet", "version": "1", "initialStepId": "hello",
            "steps": {"hello": {"id": "hello", "type": "transform", "config": {},
                                "input": {"type": "full"}, "outputKey": "out",
                                "transitions": {}}}}
    engine = Engine(flows=[flow], handlers=builtin(), triggers=[HOOK_DEF, NIGHTLY_DEF],
                    log=EmbeddedLog(path=data_dir))
    async def registered() -> bool:
        return len((await engine.projection.list_triggers()).items) == 2

    async with engine:
        await eventually(registered, what="both triggers registered")
        if fire:
            await engine.fire_trigger("hook", {"body": {"a": 1}}, "d-1", kind="webhook")
        await eventually(engine.settled, what="the engine settled")


async def test_triggers_list_pause_and_resume_on_the_embedded_log(tmp_path: Path) -> None:
    import json

    data_dir = tmp_path / "state"
    await _engine_run(data_dir, fire=True)
    listed = flowmonkey("triggers", "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("hook  webhook   enabled   -> greet  tenant acme  fired 1")
    assert lines[1].startswith("nightly  schedule  enabled   -> greet")
    assert "next 20" in lines[1]
    assert lines[-1] == "2 triggers"
    as_json = flowmonkey("triggers", "list", "--data-dir", str(data_dir), "--kind",
                         "schedule", "--json")
    items = json.loads(as_json.stdout)["items"]
    assert [(t["id"], t["enabled"]) for t in items] == [("nightly", True)]

    paused = flowmonkey("triggers", "pause", "nightly", "--reason", "maintenance",
                        "--data-dir", str(data_dir))
    assert paused.returncode == 0, paused.stderr
    assert "sent trigger.disable for trigger nightly" in paused.stdout
    await _engine_run(data_dir)  # the engine decides it when it runs
    after = flowmonkey("triggers", "list", "--data-dir", str(data_dir), "--disabled")
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines()[0].startswith("nightly  schedule  disabled  -> greet")
    # a redeploy (the engine given the definition again) keeps it paused
    nexts = flowmonkey("triggers", "next", "nightly", "--data-dir", str(data_dir),
                       "--count", "2")
    assert nexts.returncode == 0, nexts.stderr
    assert "(paused: it fires these once resumed)" in nexts.stdout

    resumed = flowmonkey("triggers", "resume", "nightly", "--data-dir", str(data_dir))
    assert resumed.returncode == 0, resumed.stderr
    await _engine_run(data_dir)
    enabled = flowmonkey("triggers", "list", "--data-dir", str(data_dir), "--enabled")
    assert [line.split()[0] for line in enabled.stdout.splitlines()[:-1]] == [
        "hook", "nightly"]


def test_triggers_commands_refuse_bad_input_clearly(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    nowhere = flowmonkey("triggers", "pause", "x", env=env)
    assert nowhere.returncode == 2
    assert "no log to send the command to" in nowhere.stderr
    bad_id = flowmonkey("triggers", "pause", "no spaces", "--data-dir", str(tmp_path),
                        env=env)
    assert bad_id.returncode == 2
    assert "is not a trigger id" in bad_id.stderr
    no_source = flowmonkey("triggers", "list", env=env)
    assert no_source.returncode == 2
    assert "no triggers to read" in no_source.stderr
    assert_no_traceback(no_source)
