"""JSON Schema validation of submissions: every error by JSON pointer, and patterns
that run on RE2 only (a pattern that backtracks for ever in Python's re is quick)."""

from __future__ import annotations

from typing import Any

import pytest

from flowmonkey.forms.validation import SchemaUnsupported, schema_errors, validator_for

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["email", "age"],
    "properties": {
        "email": {"type": "string", "format": "email"},
        "age": {"type": "integer", "minimum": 18},
        "code": {"type": "string", "pattern": "^(a+)+$"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
    },
    "patternProperties": {"^x-(a|a)*$": {"type": "string"}},
    "additionalProperties": False,
}


def errors(data: Any, schema: dict[str, Any] = SCHEMA) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in schema_errors(schema, data)]


def test_a_valid_submission_has_no_errors() -> None:
    assert errors({"email": "a@b.c", "age": 30, "code": "aaa", "tags": ["x"],
                   "x-aa": "ok"}) == []


def test_every_error_is_listed_by_its_pointer() -> None:
    found = errors({"email": "nope", "age": 3, "tags": ["ok", "long"], "extra": 1,
                    "x-aa": 5})
    assert found == [
        ("/age", "value is less than the minimum of 18"),
        ("/email", "value is not a 'email'"),
        ("/extra", "is not allowed (no such field)"),
        ("/tags/1", "value is too long"),
        ("/x-aa", "value is not of type 'string'"),
    ]


def test_missing_fields_are_named_at_the_object() -> None:
    assert errors({}) == [("", "'age' is a required property"),
                          ("", "'email' is a required property")]


def test_a_catastrophic_pattern_runs_on_re2_in_linear_time() -> None:
    # Python's re takes about forever on this; RE2 answers at once
    hostile = "a" * 50_000 + "!"
    assert errors({"email": "a@b.c", "age": 20, "code": hostile}) == [
        ("/code", "does not match the pattern '^(a+)+$'")]
    key = "x-" + "a" * 190 + "!"
    assert errors({"email": "a@b.c", "age": 20, key: "v"}) == [
        (f"/{key}", "is not allowed (no such field)")]


def test_messages_do_not_quote_long_values() -> None:
    [(pointer, message)] = errors({"s": "y" * 5000}, {"properties": {"s": {"type": "integer"}}})
    assert pointer == "/s"
    assert len(message) <= 200


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    with pytest.raises(SchemaUnsupported, match="unevaluatedProperties"):
        validator_for({"patternProperties": {"^a": {}}, "unevaluatedProperties": False})
    assert errors({"a": 1}, {"unevaluatedProperties": False}) == [
        ("", "Unevaluated properties are not allowed ('a' was unexpected)")]


def test_remote_references_are_never_fetched() -> None:
    schema = {"properties": {"a": {"$ref": "http://127.0.0.1:9/nowhere.json"}}}
    with pytest.raises(Exception, match="nowhere"):
        schema_errors(schema, {"a": 1})


def test_a_pattern_re2_cannot_run_is_refused_not_run_on_python_re() -> None:
    with pytest.raises(SchemaUnsupported, match="not an RE2 expression"):
        schema_errors({"properties": {"a": {"type": "string", "pattern": "(?=x)"}}},
                      {"a": "x"})


def test_the_schemas_dialect_is_used_with_re2_patterns() -> None:
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#",
              "properties": {"list": {"items": [{"type": "integer"}]},
                             "code": {"pattern": "^(a+)+$"}}}
    assert errors({"list": ["x"], "code": "a" * 30_000 + "!"}, draft7) == [
        ("/code", "does not match the pattern '^(a+)+$'"),
        ("/list/0", "value is not of type 'integer'")]


def test_registration_refuses_what_the_endpoint_will_not_run() -> None:
    from flowmonkey.errors import RegistrationError
    from flowmonkey.runtime.form_calls import checked_form

    with pytest.raises(RegistrationError, match="unevaluatedProperties"):
        checked_form({"id": "f", "schema": {"patternProperties": {"^a": {}},
                                            "unevaluatedProperties": False}})
