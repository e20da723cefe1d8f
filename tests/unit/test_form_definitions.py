"""Form definitions from files and modules: a flow file's ``forms:`` section, form
files of their own, an app's ``forms``; every problem named by form and field at once
(the model, the JSON Schema against its meta-schema, patterns RE2 cannot run)."""

from __future__ import annotations

import json
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
from flowmonkey.model.form import Form
from flowmonkey.runtime.form_defs import cross_problems, parse_forms

FLOW: dict[str, Any] = {
    "id": "greet", "version": "1", "initialStepId": "hello",
    "steps": {"hello": {"id": "hello", "type": "transform", "config": {},
                        "input": {"type": "full"}, "outputKey": "out", "transitions": {}}}}
SIGNUP: dict[str, Any] = {
    "id": "signup", "flowId": "greet",
    "schema": {"type": "object", "required": ["email"],
               "properties": {"email": {"type": "string", "pattern": "^[^@]+@[^@]+$"}}},
    "fields": {"email": {"maxChars": 200}}, "honeypot": "website",
    "rateLimit": {"perAddress": {"count": 5, "windowS": 60}}, "duplicateWindowS": 600}
APPROVE: dict[str, Any] = {"id": "approve", "schema": {"type": "object"}}


def test_a_flow_files_forms_section_is_taken_out_of_the_flow() -> None:
    bundle = bundle_from_document({**FLOW, "forms": [SIGNUP], "triggers": []}, "f.yaml")
    assert [f.id for f in bundle.flows] == ["greet"]
    assert [f.id for f in bundle.forms] == ["signup"]
    assert bundle.forms[0].rate_limit is not None


def test_a_form_file_of_its_own() -> None:
    bundle = bundle_from_document({"forms": [SIGNUP, APPROVE]}, "forms.yaml")
    assert (bundle.flows, [f.id for f in bundle.forms]) == ([], ["signup", "approve"])


def test_every_problem_is_named_by_form_and_field_at_once() -> None:
    bad = [
        {**SIGNUP, "schema": {"type": "objekt", "properties": {
            "email": {"type": "string", "pattern": "^(?!admin).*$"}}}},
        {"id": "limits", "rateLimit": {"perForm": {"count": 0, "windowS": 60}}},
        {"flowId": "greet"},
        "not a form",
    ]
    forms, problems = parse_forms(bad)
    assert forms == []
    assert problems[0].startswith("form 'signup': schema.type: ")
    assert any(p.startswith("form 'signup': schema.properties.email.pattern: pattern "
                            "'^(?!admin).*$' is not an RE2 expression") for p in problems)
    assert "form 'limits': rateLimit.perForm.count: Input should be greater than or " \
           "equal to 1" in problems
    assert "form #3: id: Field required" in problems
    assert problems[-1] == ("form #4: a form must be an object with id (and flowId, "
                            "schema, ...), got str")


def test_an_unknown_flow_and_an_id_defined_twice() -> None:
    forms = [Form.model_validate(SIGNUP), Form.model_validate({**SIGNUP, "flowId": "other"}),
             Form.model_validate(APPROVE)]
    assert cross_problems(forms, {"greet"}) == [
        "form 'signup': id: defined twice, differently",
        "form 'signup': flowId: flow 'other' is not registered (registered flows: greet)"]


def test_an_apps_forms_attribute() -> None:
    app = SimpleNamespace(flows=[FLOW], forms=[Form.model_validate(SIGNUP), APPROVE])
    bundle = bundle_from_object(app, "myapp")
    assert [f.id for f in bundle.forms] == ["signup", "approve"]


def test_a_flows_dir_picks_up_form_files_and_apps_check_their_flows(tmp_path: Path) -> None:
    (tmp_path / "greet.json").write_text(json.dumps(FLOW))
    (tmp_path / "forms.yaml").write_text(
        "forms:\n  - id: signup\n    flowId: greet\n    schema: {type: object}\n")
    bundle = load_flows_dir(str(tmp_path))
    assert ([f.id for f in bundle.flows], [f.id for f in bundle.forms]) == (
        ["greet"], ["signup"])
    (tmp_path / "stray.json").write_text(json.dumps({"forms": [{"id": "stray",
                                                                "flowId": "nope"}]}))
    with pytest.raises(CliError, match="form 'stray': flowId: flow 'nope' is not registered"):
        load_apps([], [str(tmp_path)])


def test_forms_must_be_a_list() -> None:
    with pytest.raises(CliError, match='"forms" must be a list'):
        bundle_from_document({"forms": {"id": "x"}}, "forms.yaml")
