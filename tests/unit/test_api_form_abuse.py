"""The public endpoint under abuse: every case is answered 4xx, nothing starts, and
nothing reaches the form's partition (refused before the body was read as fields),
but for the cases the design records there (a failed captcha, spam, invalid)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.unit.forms_support import CONTACT, LIMITED, FormsApi, forms_api

JSON = {"Content-Type": "application/json"}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


async def chunks(size: int, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b" " * size


ABUSE: list[tuple[str, dict[str, Any], int, str]] = [
    ("huge body, declared", {"content": b"{" + b" " * 20_000 + b"}", "headers": JSON},
     413, "BODY_TOO_LARGE"),
    ("huge body, streamed without a length",
     {"content": chunks(1024, 64), "headers": JSON}, 413, "BODY_TOO_LARGE"),
    ("deep JSON", {"content": orjson.dumps({"name": nested(9)}), "headers": JSON},
     400, "INVALID_BODY"),
    ("deeper than the JSON reader",
     {"content": b'{"a":' + b"[" * 1500 + b"]" * 1500 + b"}", "headers": JSON},
     400, "INVALID_BODY"),
    ("many fields", {"content": orjson.dumps({f"f{i}": 1 for i in range(201)}),
                     "headers": JSON}, 400, "INVALID_BODY"),
    ("many values", {"content": b"&".join(b"t=" for _ in range(2001)),
                     "headers": URLENCODED}, 400, "INVALID_BODY"),
    ("a long key", {"content": orjson.dumps({"k" * 201: 1}), "headers": JSON},
     400, "INVALID_BODY"),
    ("JSON not UTF-8", {"content": b'{"name": "\xff\xfe"}', "headers": JSON},
     400, "INVALID_BODY"),
    ("a lone surrogate", {"content": b'{"name": "\\udc00"}', "headers": JSON},
     400, "INVALID_BODY"),
    ("a NUL character", {"content": b'{"name": "a\\u0000b"}', "headers": JSON},
     400, "INVALID_BODY"),
    ("percent-encoding not UTF-8", {"content": b"name=%C0%AF", "headers": URLENCODED},
     400, "INVALID_BODY"),
    ("malformed urlencoded", {"content": b"name", "headers": URLENCODED},
     400, "INVALID_BODY"),
    ("malformed JSON", {"content": b'{"name": ', "headers": JSON}, 400, "INVALID_BODY"),
    ("JSON not an object", {"content": b'["name"]', "headers": JSON}, 400, "INVALID_BODY"),
    ("a file in multipart", {"files": {"cv": ("cv.pdf", b"%PDF-1.4", "application/pdf")},
                             "data": {"name": "Ann"}}, 415, "FILES_NOT_ACCEPTED"),
    ("multipart without a boundary",
     {"content": b"--x--", "headers": {"Content-Type": "multipart/form-data"}},
     400, "INVALID_BODY"),
    ("wrong content type", {"content": b"<name>Ann</name>",
                            "headers": {"Content-Type": "application/xml"}},
     415, "UNSUPPORTED_MEDIA_TYPE"),
    ("no content type", {"content": b'{"name": "Ann"}'}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("another charset", {"content": b'{"name": "Ann"}',
                         "headers": {"Content-Type": "application/json; charset=latin-1"}},
     415, "UNSUPPORTED_MEDIA_TYPE"),
    ("a compressed body (never inflated)",
     {"content": gzip.compress(b'{"name": "' + b"A" * 1_000_000 + b'"}'),
      "headers": {**JSON, "Content-Encoding": "gzip"}}, 400, "INVALID_BODY"),
    ("a token of no step", {"json": {"name": "Ann", "token": "garbage"}},
     404, "TOKEN_NOT_FOUND"),
    ("a token too long", {"json": {"name": "Ann"}, "params": {"token": "a." * 3000}},
     404, "TOKEN_NOT_FOUND"),
]


@pytest.fixture
async def api() -> AsyncIterator[FormsApi]:
    async with forms_api(CONTACT) as found:
        yield found


@pytest.mark.parametrize(("case", "request_args", "status", "code"),
                         [pytest.param(*case, id=case[0]) for case in ABUSE])
async def test_abuse_is_refused_and_starts_nothing(
        api: FormsApi, case: str, request_args: dict[str, Any], status: int,
        code: str) -> None:
    response = await api.post("contact", **request_args)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), \
        response.text
    assert await api.executions() == []
    # refused before it was a submission: nothing sent to the form's partition
    assert api.recorded("contact") == []


async def test_every_abuse_case_is_counted(api: FormsApi) -> None:
    for _, request_args, _, _ in ABUSE:
        if "content" in request_args and not isinstance(request_args["content"], bytes):
            request_args = {**request_args, "content": chunks(1024, 64)}
        await api.post("contact", **request_args)
    counted = sum(api.metric("contact", outcome) for outcome in (
        "too_large", "bad_body", "unsupported_media_type", "token_refused"))
    assert counted == len(ABUSE)


async def test_a_flood_of_spam_and_invalid_submissions_is_recorded_and_starts_nothing(
        api: FormsApi) -> None:
    for i in range(20):
        spam = await api.post("contact", {"name": "x", "email": "x@example.com",
                                          "website": f"http://spam/{i}"})
        invalid = await api.post("contact", {"name": "", "email": "x"})
        assert (spam.status_code, invalid.status_code) == (201, 422)
    assert await api.executions() == []
    assert api.reasons("contact") == ["spam", "invalid"] * 20


async def test_a_forged_forwarded_for_from_an_untrusted_peer_changes_no_window() -> None:
    async with forms_api(LIMITED, trusted_proxies=()) as api:
        statuses = [(await api.post("limited", {"n": i}, address=f"198.51.100.{i}"))
                    .status_code for i in range(3)]
        # every request came from the test client's own address, whatever it claimed
        assert statuses == [201, 201, 429]
