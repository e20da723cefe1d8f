"""Submission bodies: the three encodings, and everything refused before any field is
looked at (wrong media type, files, bad encodings, malformed bodies, the bounds)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flowmonkey.forms.bounds import BodyError, ParseBounds
from flowmonkey.forms.parsing import coerce_form_values, parse_body

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def multipart(parts: list[tuple[str, bytes]], boundary: str = "XyZ") -> tuple[str, bytes]:
    """``(content type, body)`` of a multipart body of ``(headers, content)`` parts."""
    body = b"".join(f"--{boundary}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
                    for headers, content in parts) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def field(name: str) -> str:
    return f'Content-Disposition: form-data; name="{name}"'


def refused(content_type: str | None, body: bytes, bounds: ParseBounds | None = None
            ) -> BodyError:
    with pytest.raises(BodyError) as caught:
        parse_body(content_type, body, bounds)
    return caught.value


def test_json_urlencoded_and_multipart_give_the_same_fields() -> None:
    assert parse_body(JSON, b'{"name": "Ann", "tags": ["a", "b"]}') == (
        {"name": "Ann", "tags": ["a", "b"]}, False)
    assert parse_body(FORM + "; charset=UTF-8", b"name=Ann&tags=a&tags=b") == (
        {"name": "Ann", "tags": ["a", "b"]}, True)
    kind, body = multipart([(field("name"), b"Ann"), (field("tags"), b"a"),
                            (field("tags"), b"b")])
    assert parse_body(kind, body) == ({"name": "Ann", "tags": ["a", "b"]}, True)


def test_percent_encoded_utf8_and_raw_utf8_are_read() -> None:
    assert parse_body(FORM, b"name=J%C3%BCrgen+K&note=")[0] == {"name": "Jürgen K",
                                                                 "note": ""}
    assert parse_body(FORM, "name=Jürgen".encode())[0] == {"name": "Jürgen"}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml",
                                          "application/json; charset=latin-1",
                                          "application/x-www-form-urlencoded; charset=utf-16"])
def test_other_media_types_and_charsets_are_415(content_type: str | None) -> None:
    error = refused(content_type, b"{}")
    assert (error.status, error.code) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_file_in_multipart_is_415() -> None:
    kind, body = multipart([(field("name"), b"Ann"),
                            (field("cv") + '; filename="cv.pdf"\r\nContent-Type: '
                             "application/pdf", b"%PDF-1.4")])
    error = refused(kind, body)
    assert (error.status, error.code) == (415, "FILES_NOT_ACCEPTED")
    kind, body = multipart([(field("blob") + "\r\nContent-Type: application/octet-stream",
                             b"\x00\x01")])
    assert refused(kind, body).code == "FILES_NOT_ACCEPTED"


@pytest.mark.parametrize(("content_type", "body", "says"), [
    (JSON, b'{"a": "\xff"}', "not valid JSON"),
    (JSON, b'{"a": "\\ud800"}', "not valid JSON"),
    (JSON, b'{"a": NaN}', "not valid JSON"),
    (JSON, b"[1, 2]", "JSON object"),
    (JSON, b"", "not valid JSON"),
    (FORM, b"a=%ff%fe", "not UTF-8"),
    (FORM, b"a=\xff", "not UTF-8"),
    (FORM, b"a&b=1", "urlencoded"),
    (FORM, b"a=%00", "NUL"),
    (JSON, b'{"a\\u0000": 1}', "NUL"),
    ("multipart/form-data", b"--x--", "boundary"),
    ("multipart/form-data; boundary=x", b"garbage without parts", "multipart"),
])
def test_bad_encodings_and_malformed_bodies_are_400(content_type: str, body: bytes,
                                                    says: str) -> None:
    error = refused(content_type, body)
    assert (error.status, error.code) == (400, "INVALID_BODY")
    assert says in error.message


def test_a_multipart_value_that_is_not_utf8_is_400() -> None:
    kind, body = multipart([(field("name"), b"J\xfcrgen")])
    assert "not UTF-8" in refused(kind, body).message


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_deep_json_is_400_at_the_bound_and_fine_below_it() -> None:
    assert parse_body(JSON, orjson.dumps({"f": nested(8)}))[0]["f"]["a"]
    error = refused(JSON, orjson.dumps({"f": nested(9)}))
    assert "nests deeper than 8" in error.message
    # far past any bound: the JSON reader's own limit, still a 400
    assert refused(JSON, b'{"f":' + b"[" * 5000 + b"]" * 5000 + b"}").status == 400


def test_many_fields_many_values_and_long_keys_are_400() -> None:
    assert "201 fields" in refused(JSON, orjson.dumps({f"k{i}": i for i in range(201)})).message
    assert "more than 2000 values" in refused(
        JSON, orjson.dumps({"list": list(range(2001))})).message
    assert "more than 2000 values" in refused(
        FORM, "&".join(f"k={i}" for i in range(2001)).encode()).message
    assert "longer than 200" in refused(JSON, orjson.dumps({"k" * 201: 1})).message
    assert "longer than 200" in refused(FORM, b"k" * 201 + b"=1").message
    small = ParseBounds(max_fields=2)
    assert "3 fields" in refused(FORM, b"a=1&b=2&c=3", small).message


def test_too_many_multipart_parts_are_400() -> None:
    kind, body = multipart([(field(f"f{i}"), b"x") for i in range(11)])
    assert "more than 10 values" in refused(kind, body, ParseBounds(max_values=10)).message


def test_form_values_become_the_types_the_schema_asks_for() -> None:
    schema = {"properties": {"age": {"type": "integer"}, "price": {"type": "number"},
                             "ok": {"type": "boolean"}, "ids": {"type": "array",
                                                                "items": {"type": "integer"}},
                             "name": {"type": "string"}}}
    data = {"age": "42", "price": "9.5", "ok": "on", "ids": "7", "name": "12", "x": "1"}
    assert coerce_form_values(data, schema) == {
        "age": 42, "price": 9.5, "ok": True, "ids": [7], "name": "12", "x": "1"}
    # what does not read as the type stays a string, for the schema to report
    odd = {"age": "4x", "price": "nan", "ok": "maybe", "ids": ["1", "z"]}
    assert coerce_form_values(odd, schema) == {"age": "4x", "price": "nan", "ok": "maybe",
                                               "ids": [1, "z"]}
    assert coerce_form_values({"age": "9" * 5000}, schema) == {"age": "9" * 5000}
