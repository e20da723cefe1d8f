"""Trigger definitions from files and modules: a flow file's ``triggers:`` section,
trigger files of their own, an app's ``triggers``; every problem named by trigger and
field at once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flowmonkey.cli.common import (
    CliError,
    bundle_from_document,
    bundle_from_object,
    load_apps,
    load_flows_dir,
)
from flowmonkey.model.trigger import Trigger
from flowmonkey.runtime.trigger_defs import (
    TriggerValidationError,
    next_fire_times,
    parse_triggers,
    validated_triggers,
)

FLOW: dict[str, Any] = {
    "id": "greet", "version": "1", "initialStepId": "hello",
    "steps": {"hello": {"id": "hello", "type": "transform", "config": {},
                        "input": {"type": "full"}, "outputKey": "out", "transitions": {}}}}
HOOK: dict[str, Any] = {"id": "hook", "kind": "webhook", "flowId": "greet",
                        "webhook": {"secret": "gh-secret"}}
NIGHTLY: dict[str, Any] = {"id": "nightly", "kind": "schedule", "flowId": "greet",
                           "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}}


def test_a_flow_files_triggers_section_is_taken_out_of_the_flow() -> None:
    bundle = bundle_from_document({**FLOW, "triggers": [HOOK, NIGHTLY]}, "f.yaml")
    assert [f.id for f in bundle.flows] == ["greet"]
    assert [t.id for t in bundle.triggers] == ["hook", "nightly"]
    assert bundle.triggers[1].schedule is not None


def test_flows_and_triggers_side_by_side() -> None:
    bundle = bundle_from_document({"flows": [FLOW], "triggers": [HOOK]}, "f.yaml")
    assert ([f.id for f in bundle.flows], [t.id for t in bundle.triggers]) == (
        ["greet"], ["hook"])


def test_a_trigger_file_of_its_own() -> None:
    bundle = bundle_from_document({"triggers": [HOOK]}, "t.yaml")
    assert (bundle.flows, [t.id for t in bundle.triggers]) == ([], ["hook"])


def test_every_problem_is_named_by_trigger_and_field_at_once() -> None:
    bad = [
        {**NIGHTLY, "schedule": {"cron": "61 * * * *", "timezone": "Mars/Olympus"}},
        {"id": "w", "kind": "webhook", "flowId": "greet", "webhook": {}},
        {"kind": "webhook", "flowId": "greet", "webhook": {"secret": "s"}},
        {"id": "loop", "kind": "event", "flowId": "greet", "event": {"flowId": "greet"}},
        {"id": "two", "kind": "webhook", "flowId": "greet", "webhook": {"secret": "s"},
         "schedule": {"cron": "* * * * *"}},
        "nonsense",
    ]
    with pytest.raises(CliError) as info:
        bundle_from_document({"triggers": bad}, "t.yaml")
    message = str(info.value)
    for expected in (
            "t.yaml: invalid trigger:",
            "trigger 'nightly': schedule.cron: cron '61 * * * *' is not valid",
            "trigger 'nightly': schedule.timezone: unknown timezone 'Mars/Olympus'",
            "trigger 'w': webhook: a webhook needs a secret",
            "trigger #3: id: Field required",
            "trigger 'loop': event.flowId: the trigger starts flow 'greet' on an event of "
            "that same flow",
            "trigger 'two': (trigger): a webhook trigger has no 'schedule' settings",
            "trigger #6: a trigger must be an object"):
        assert expected in message, f"{expected!r} not in\n{message}"


def test_a_cron_with_the_wrong_number_of_fields() -> None:
    _, problems = parse_triggers([{**NIGHTLY, "schedule": {"cron": "* * *"}}])
    assert problems == ["trigger 'nightly': schedule.cron: cron '* * *' has 3 fields: it "
                        "needs 5 (minute hour day month weekday), or 6 with seconds first"]


def test_a_six_field_cron_has_seconds_first() -> None:
    triggers, problems = parse_triggers([{**NIGHTLY, "schedule": {"cron": "*/10 * * * * *"}}])
    assert problems == []
    times = next_fire_times(triggers[0], 1_700_000_000_000, 3)
    assert times == [1_700_000_010_000, 1_700_000_020_000, 1_700_000_030_000]


def test_an_unknown_flow_and_an_id_defined_twice() -> None:
    with pytest.raises(TriggerValidationError) as info:
        validated_triggers([HOOK, {**HOOK, "flowId": "other"},
                            {**NIGHTLY, "flowId": "nowhere"}], flow_ids={"greet", "other"})
    assert info.value.problems == [
        "trigger 'hook': id: defined twice, differently",
        "trigger 'nightly': flowId: flow 'nowhere' is not registered (registered flows: "
        "greet, other)"]
    # the same definition twice is one trigger
    assert [t.id for t in validated_triggers([HOOK, HOOK], {"greet"})] == ["hook"]


def test_an_apps_triggers_attribute() -> None:
    app = SimpleNamespace(flows=[FLOW], triggers=[Trigger.model_validate(HOOK), NIGHTLY])
    bundle = bundle_from_object(app, "myapp")
    assert [t.id for t in bundle.triggers] == ["hook", "nightly"]


def test_a_flows_dir_picks_up_trigger_files(tmp_path: Path) -> None:
    import json

    (tmp_path / "greet.json").write_text(json.dumps(FLOW))
    (tmp_path / "hooks.yaml").write_text(
        "triggers:\n  - id: hook\n    kind: webhook\n    flowId: greet\n"
        "    webhook: {secret: gh-secret}\n")
    bundle = load_flows_dir(str(tmp_path))
    assert ([f.id for f in bundle.flows], [t.id for t in bundle.triggers]) == (
        ["greet"], ["hook"])


def test_apps_refuse_a_trigger_of_a_flow_they_lack(tmp_path: Path) -> None:
    import json

    (tmp_path / "greet.json").write_text(json.dumps(FLOW))
    (tmp_path / "hooks.json").write_text(json.dumps({"triggers": [{**HOOK,
                                                                   "flowId": "nope"}]}))
    with pytest.raises(CliError, match="trigger 'hook': flowId: flow 'nope' is not "
                                       "registered"):
        load_apps([], [str(tmp_path)])


def test_triggers_must_be_a_list() -> None:
    with pytest.raises(CliError, match='"triggers" must be a list'):
        bundle_from_document({"triggers": {"id": "x"}}, "t.yaml")
