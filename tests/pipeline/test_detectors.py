"""Built-in detectors and the vectorized Redactor: each detector's positives and negatives."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from lookout.pipeline.detectors import DETECTOR_NAMES, Redactor, iban_valid, luhn_valid, regex_error

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


def redact_one(text: str, **kw) -> tuple[str, dict[str, int]]:
    out, counts = Redactor(**kw).redact(pa.array([text]))
    return out[0].as_py(), counts


@pytest.mark.parametrize("text, secret, rule", [
    ("contact bob.smith+x@example.co.uk today", "bob.smith+x@example.co.uk", "email"),
    ("card 4111 1111 1111 1111 ok", "4111 1111 1111 1111", "credit_card"),
    ("card=4111-1111-1111-1111", "4111-1111-1111-1111", "credit_card"),
    ("paid with 5555555555554444.", "5555555555554444", "credit_card"),
    ("amex 3782 822463 10005", "3782 822463 10005", "credit_card"),
    ("amex 378282246310005", "378282246310005", "credit_card"),
    ("iban DE89 3704 0044 0532 0130 00 thanks", "DE89 3704 0044 0532 0130 00", "iban"),
    ("to GB82WEST12345698765432", "GB82WEST12345698765432", "iban"),
    ("NL91ABNA0417164300", "NL91ABNA0417164300", "iban"),
    (f"session {JWT} end", JWT, "jwt"),
    ("Authorization: Bearer abc.DEF-123_x~y+z/w==", "abc.DEF-123_x~y+z/w==", "bearer_token"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "bearer_token"),
    ("key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "api_key"),
    ("gh ghp_" + "A1b2" * 9, "ghp_" + "A1b2" * 9, "api_key"),
    ("gho_" + "z" * 36, "gho_" + "z" * 36, "api_key"),
    ("ghs_" + "Q" * 36, "ghs_" + "Q" * 36, "api_key"),
    ("github_pat_" + "11ABCDEFG0" * 3, "github_pat_" + "11ABCDEFG0" * 3, "api_key"),
    ("slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij", "api_key"),
    ("xoxp-99999999999-zzzz", "xoxp-99999999999-zzzz", "api_key"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "api_key"),
    ("rk_live_abcdefghijklmnop1234", "rk_live_abcdefghijklmnop1234", "api_key"),
    ("google AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSyA-1234567890abcdefghijklmnopqrstu",
     "api_key"),
    ("call?api_key=s3cr3tvalue&page=2", "s3cr3tvalue", "api_key"),
    ("login password=hunter2 user=bob", "hunter2", "api_key"),
    ('{"client_secret": "shh-123"}', "shh-123", "api_key"),
    ("GET /a?sig=abcdef&x=1", "abcdef", "url_params"),
    ("https://h/p?X-Amz-Signature=deadbeef&X-Amz-Date=1", "deadbeef", "api_key"),
    ("https://admin:pa55w0rd@db.example.com/x", "pa55w0rd", "url_params"),
])
def test_detector_positive(text: str, secret: str, rule: str) -> None:
    out, counts = redact_one(text)
    assert secret not in out
    assert "****" in out
    assert counts.get(rule, 0) >= 1


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 is not Luhn-valid",
    "order 4111111111111112",
    "ts 1700000000000000000 is a timestamp",  # starts with 1: no card network
    "iban DE89 3704 0044 0532 0130 01 has a bad checksum",
    "GB82WEST12345698765431",
    "eyJhbGciOiJIUzI1NiJ9 alone is no JWT",
    "a bearer of good news",
    "AKIA too short",
    "ghp_short",
    "sk_live_short",
    "max_tokens=20 token_count=3",
    "GET /search?keyword=shoes&page=2",
    "no email at all, just @mentions and a.b",
    "plain 12345 text",
])
def test_detector_negative(text: str) -> None:
    out, counts = redact_one(text)
    assert out == text
    assert counts == {}


def test_keeps_context_and_counts_values_not_matches() -> None:
    values = pa.array(["a@x.io b@y.io", None, "fine", "Authorization: Bearer tok123"])
    out, counts = Redactor().redact(values)
    assert out.to_pylist() == ["**** ****", None, "fine", "Authorization: Bearer ****"]
    assert counts == {"email": 1, "bearer_token": 1}


def test_jwt_inside_bearer_counts_once() -> None:
    out, counts = redact_one(f"Authorization: Bearer {JWT}")
    assert out == "Authorization: Bearer ****"
    assert counts == {"jwt": 1}


def test_validators_directly() -> None:
    cards = pa.array(["4111111111111111", "4111111111111112", "378282246310005",
                      "6011111111111117", "4111-1111-1111-1111", "411111111111"])
    assert luhn_valid(cards).tolist() == [True, False, True, True, True, False]
    ibans = pa.array(["DE89370400440532013000", "DE89370400440532013001", "FR1420041010050500013M02606",
                      "GB82 WEST 1234 5698 7654 32", "DE8937040044"])
    assert iban_valid(ibans).tolist() == [True, False, True, True, False]
    assert luhn_valid(pa.array([], pa.string())).tolist() == []


def test_hash_action_uses_the_collector_digest() -> None:
    out, counts = redact_one("mail bob@example.com", hash_function="md5")
    assert out == "mail " + hashlib.md5(b"bob@example.com").hexdigest()  # noqa: S324
    out, _ = redact_one("mail bob@example.com", hash_function="sha1")
    assert out == "mail " + hashlib.sha1(b"bob@example.com").hexdigest()  # noqa: S324
    out, _ = redact_one("mail bob@example.com", action="hash")  # hash alone: sha3-256
    assert out == "mail " + hashlib.sha3_256(b"bob@example.com").hexdigest()


def test_custom_mask_with_backslash() -> None:
    out, _ = redact_one("bob@example.com", mask=r"[\1 redacted]")
    assert out == r"[\1 redacted]"


def test_blocked_and_allowed_values() -> None:
    r = Redactor(detectors=[], blocked_values=[r"4[0-9]{12}(?:[0-9]{3})?", "secret-[a-z]+"],
                 allowed_values=[r"@example\.com$"])
    values = pa.array(["visa 4111111111111111", "secret-abc and secret-def", "me@example.com",
                       "secret-x me@example.com", "bob@other.org"])
    out, counts = r.redact(values)
    assert out.to_pylist() == ["visa ****", "**** and ****", "me@example.com",
                               "secret-x me@example.com", "bob@other.org"]
    assert counts == {"blocked_values[0]": 1, "blocked_values[1]": 1}


def test_no_detectors_no_rules_is_identity() -> None:
    values = pa.array(["bob@example.com"])
    out, counts = Redactor(detectors=[]).redact(values)
    assert out.to_pylist() == ["bob@example.com"] and counts == {}


def test_rows_with_nul_are_masked_whole_when_a_rule_matches() -> None:
    out, counts = Redactor().redact(pa.array(["a\x00b bob@example.com", "c\x00d"]))
    assert out.to_pylist() == ["****", "c\x00d"]
    assert counts == {"email": 1}


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        Redactor(detectors=["ssn"])
    with pytest.raises(ValueError, match="invalid regex"):
        Redactor(blocked_values=["("])
    with pytest.raises(ValueError, match="unknown hash_function"):
        Redactor(hash_function="sha256")
    assert regex_error("(") and regex_error("a+") is None
    assert set(DETECTOR_NAMES) >= {"email", "credit_card", "iban", "jwt", "bearer_token", "api_key"}


def test_large_mixed_column_matches_row_by_row() -> None:
    rng = np.random.default_rng(1)
    pool = ["plain text", "bob@example.com", "4111 1111 1111 1111", "4111 1111 1111 1112",
            "DE89370400440532013000", None, "token=abc", "x" * 50]
    picks = rng.integers(0, len(pool), 5000)
    values = pa.array([pool[i] for i in picks])
    out, counts = Redactor().redact(values)
    singles = {p: Redactor().redact(pa.array([p], pa.string()))[0][0].as_py() for p in pool}
    assert out.to_pylist() == [singles[pool[i]] for i in picks]
    assert counts["email"] == int((picks == 1).sum())
