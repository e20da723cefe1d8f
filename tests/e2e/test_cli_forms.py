"""``flowmonkey validate`` on forms, run as a real subprocess."""

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
forms:
  - id: signup
    flowId: greet
    schema: {type: object, properties: {email: {type: string, pattern: "^[^@]+@.+$"}}}
"""

FORMS = """\
forms:
  - id: approve
  - id: broken
    flowId: greet
    schema: {type: object, properties: {name: {type: strin, pattern: "(a)\\\\1"}}}
  - id: stray
    flowId: missing
"""


def test_validate_reports_forms_and_names_each_bad_one(tmp_path: Path) -> None:
    (tmp_path / "greet.yaml").write_text(FLOW)
    good = flowmonkey("validate", "greet.yaml", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "OK   greet.yaml: form signup (-> greet)" in good.stdout
    (tmp_path / "forms.yaml").write_text(FORMS)
    proc = flowmonkey("validate", "greet.yaml", "forms.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    assert "form 'broken': schema.properties.name.type: " in proc.stderr
    assert "form 'broken': schema.properties.name.pattern: pattern '(a)\\\\1' is not an " \
           "RE2 expression" in proc.stderr
    (tmp_path / "forms.yaml").write_text(FORMS.split("  - id: broken")[0]
                                         + "  - id: stray" + FORMS.split("  - id: stray")[1])
    stray = flowmonkey("validate", "greet.yaml", "forms.yaml", cwd=tmp_path)
    assert stray.returncode == 2, stray.stdout + stray.stderr
    assert "FAIL forms.yaml: forms" in stray.stderr
    assert "form 'stray': flowId: flow 'missing' is not registered (registered flows: " \
           "greet)" in stray.stderr
