"""Webhook signature checks (api/signatures.py): right, wrong, missing, malformed,
stale, and a body altered by one byte, in both styles."""

from __future__ import annotations

from flowmonkey.api.signatures import (
    check,
    check_github,
    check_stripe,
    github_signature,
    stripe_signature,
)

SECRET = "whsec-0123456789"
BODY = b'{"action":"opened","number":7}'
NOW = 1_700_000_000


def altered(body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 1])


def test_github_right_signature_passes() -> None:
    assert check_github(SECRET, BODY, github_signature(SECRET, BODY)).ok


def test_github_upper_case_hex_passes() -> None:
    value = github_signature(SECRET, BODY)
    assert check_github(SECRET, BODY, "sha256=" + value[7:].upper()).ok


def test_github_wrong_secret_is_a_mismatch() -> None:
    verdict = check_github(SECRET, BODY, github_signature("other-secret", BODY))
    assert (verdict.ok, verdict.reason) == (False, "mismatch")


def test_github_missing_header() -> None:
    assert check_github(SECRET, BODY, None).reason == "missing"
    assert check_github(SECRET, BODY, "").reason == "missing"


def test_github_malformed_headers() -> None:
    for header in ("sha1=abcd", "sha256=xyz", "sha256=" + "ab" * 31, "garbage",
                   "sha256=" + "zz" * 32):
        assert check_github(SECRET, BODY, header).reason == "malformed", header


def test_github_body_altered_by_one_byte_fails() -> None:
    header = github_signature(SECRET, BODY)
    assert check_github(SECRET, altered(BODY), header).reason == "mismatch"


def test_stripe_right_signature_within_tolerance_passes() -> None:
    header = stripe_signature(SECRET, BODY, NOW - 100)
    assert check_stripe(SECRET, BODY, header, now_s=NOW, tolerance_s=300).ok


def test_stripe_stale_timestamp_is_refused() -> None:
    header = stripe_signature(SECRET, BODY, NOW - 301)
    verdict = check_stripe(SECRET, BODY, header, now_s=NOW, tolerance_s=300)
    assert (verdict.ok, verdict.reason) == (False, "stale")
    future = stripe_signature(SECRET, BODY, NOW + 301)
    assert check_stripe(SECRET, BODY, future, now_s=NOW, tolerance_s=300).reason == "stale"


def test_stripe_timestamp_is_signed_too() -> None:
    # a fresh t with an old signature: the signature covers t, so it no longer matches
    old = stripe_signature(SECRET, BODY, NOW - 1000)
    forged = f"t={NOW}," + old.split(",", 1)[1]
    assert check_stripe(SECRET, BODY, forged, now_s=NOW, tolerance_s=300).reason == "mismatch"


def test_stripe_any_of_several_signatures_passes() -> None:
    good = stripe_signature(SECRET, BODY, NOW).split(",", 1)[1]
    header = f"t={NOW},v1={'00' * 32},{good}"
    assert check_stripe(SECRET, BODY, header, now_s=NOW, tolerance_s=300).ok


def test_stripe_missing_and_malformed() -> None:
    assert check_stripe(SECRET, BODY, None, now_s=NOW, tolerance_s=300).reason == "missing"
    for header in ("v1=" + "00" * 32, f"t={NOW}", f"t=abc,v1={'00' * 32}", "nonsense",
                   "t=1," + ",".join(["x=y"] * 2000)):
        verdict = check_stripe(SECRET, BODY, header, now_s=NOW, tolerance_s=300)
        assert verdict.reason == "malformed", header


def test_stripe_body_altered_by_one_byte_fails() -> None:
    header = stripe_signature(SECRET, BODY, NOW)
    verdict = check_stripe(SECRET, altered(BODY), header, now_s=NOW, tolerance_s=300)
    assert verdict.reason == "mismatch"


def test_check_dispatches_by_style() -> None:
    assert check("github", SECRET, BODY, github_signature(SECRET, BODY), now_s=NOW,
                 tolerance_s=1).ok
    assert check("stripe", SECRET, BODY, stripe_signature(SECRET, BODY, NOW), now_s=NOW,
                 tolerance_s=1).ok
    assert not check("stripe", SECRET, BODY, github_signature(SECRET, BODY), now_s=NOW,
                     tolerance_s=1).ok
