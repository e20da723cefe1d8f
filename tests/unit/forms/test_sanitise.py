"""Sanitising by field rules: trimming, control characters, HTML tags, lengths."""

from __future__ import annotations

from flowmonkey.forms.sanitise import sanitise, strip_html
from flowmonkey.model.form import FieldRules, Form

FORM = Form.model_validate({
    "id": "contact",
    "fields": {"bio": {"stripHtml": True, "maxChars": 20},
               "raw": {"trim": False, "stripControl": False}},
    "defaultRules": {"maxChars": 10},
})


def test_strings_are_trimmed_and_lose_control_characters_but_tabs_and_newlines() -> None:
    out = sanitise(FORM, {"name": "  Ann\x07\u0085 \x1b[31m ", "note": "a\tb\r\nc"})
    assert out.data == {"name": "Ann [31m", "note": "a\tb\nc"}
    assert out.problems == []


def test_html_tags_go_where_a_field_says_so_and_nothing_is_decoded() -> None:
    out = sanitise(FORM, {"bio": "<b>Hi</b> &lt;3 <script>x</script>", "name": "<b>x</b>"})
    assert out.data["bio"] == "Hi &lt;3 x"
    assert out.data["name"] == "<b>x</b>"


def test_strip_html_keeps_what_is_not_a_tag() -> None:
    assert strip_html("a < b and c<d") == "a < b and c"
    assert strip_html("1 <2") == "1 <2"
    assert strip_html("x<!-- hidden <b> -->y") == "xy"
    assert strip_html("x<img src=a onerror=alert(1)") == "x"
    assert strip_html("tail <") == "tail <"
    assert strip_html("<" * 100_000) == "<" * 100_000


def test_rules_apply_at_any_depth_and_leave_other_values() -> None:
    out = sanitise(FORM, {"bio": [" <i>a</i> ", {"x": "<u>b</u>"}], "n": 5, "f": None})
    assert out.data == {"bio": ["a", {"x": "b"}], "n": 5, "f": None}


def test_a_field_without_rules_to_apply_keeps_its_text() -> None:
    out = sanitise(FORM, {"raw": "  \x07keep  "})
    assert out.data == {"raw": "  \x07keep  "}


def test_over_long_text_is_an_error_at_its_pointer_never_a_cut() -> None:
    out = sanitise(FORM, {"name": "x" * 11, "bio": ["ok", "y" * 21], "a/b~c": "z" * 11})
    assert out.data["name"] == "x" * 11
    assert [p.to_dict() for p in out.problems] == [
        {"pointer": "/name", "message": "is longer than 10 characters"},
        {"pointer": "/bio/1", "message": "is longer than 20 characters"},
        {"pointer": "/a~1b~0c", "message": "is longer than 10 characters"}]


def test_length_counts_after_cleaning() -> None:
    out = sanitise(FORM, {"name": "   0123456789   "})
    assert out.problems == []


def test_problems_are_bounded() -> None:
    out = sanitise(FORM, {"list": ["x" * 11] * 500})
    assert len(out.problems) == 50


def test_default_rules_are_the_models() -> None:
    form = Form(id="f")
    assert form.default_rules == FieldRules()
    assert sanitise(form, {"a": " \x00b "}).data == {"a": "b"}
