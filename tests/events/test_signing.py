import base64
import hashlib
import hmac

import pytest

from tollhouse.config import Secret
from tollhouse.errors import InvalidSignature
from tollhouse.events.signing import mask_url, sign, signature_headers, verify

BODY = b'{"id":"evt_1","event":"budget.alert"}'


def test_signature_matches_an_independent_hmac() -> None:
    expected = base64.b64encode(
        hmac.new(b"topsecret", b"evt_1.1700000000." + BODY, hashlib.sha256).digest()
    ).decode()
    assert sign("topsecret", "evt_1", 1700000000, BODY) == "v1," + expected
    assert sign(Secret("topsecret"), "evt_1", 1700000000, BODY) == "v1," + expected


def test_whsec_secrets_are_base64_decoded() -> None:
    key = b"\x00\x01binary-key"
    whsec = "whsec_" + base64.b64encode(key).decode()
    assert sign(whsec, "m", 1, b"x") == sign(key, "m", 1, b"x")


def test_headers_verify_and_carry_no_secret() -> None:
    headers = signature_headers(Secret("s3cr3t-value"), "evt_9", BODY, timestamp=1700000000)
    assert headers["webhook-id"] == "evt_9"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,")
    assert all("s3cr3t" not in v for v in headers.values())
    verify("s3cr3t-value", headers, BODY, now=1700000100)
    # header names are case-insensitive
    verify("s3cr3t-value", {k.upper(): v for k, v in headers.items()}, BODY, now=1700000000)


def test_tampered_body_wrong_secret_and_stale_timestamp_fail() -> None:
    headers = signature_headers("k", "evt_9", BODY, timestamp=1700000000)
    with pytest.raises(InvalidSignature):
        verify("k", headers, BODY.replace(b"alert", b"alerT"), now=1700000000)
    with pytest.raises(InvalidSignature):
        verify("other", headers, BODY, now=1700000000)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify("k", headers, BODY, now=1700000000 + 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify("k", headers, BODY, now=1700000000 - 301)
    with pytest.raises(InvalidSignature):
        verify("k", {**headers, "webhook-id": "evt_other"}, BODY, now=1700000000)
    with pytest.raises(InvalidSignature):
        verify("k", {**headers, "webhook-timestamp": "soon"}, BODY, now=1700000000)
    with pytest.raises(InvalidSignature):
        verify("k", {"webhook-id": "evt_9"}, BODY, now=1700000000)


def test_any_of_several_rotated_signatures_is_accepted() -> None:
    new = signature_headers("new", "evt_9", BODY, timestamp=1700000000)
    old = signature_headers("old", "evt_9", BODY, timestamp=1700000000)
    both = {**new, "webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}"}
    verify("new", both, BODY, now=1700000000)
    verify("old", both, BODY, now=1700000000)


@pytest.mark.parametrize(
    ("url", "hidden", "shown"),
    [
        ("https://user:pw@hooks.example.com/gate", "pw", "hooks.example.com/gate"),
        ("https://h.example.com/in?token=abc123&x=1", "abc123", "token=****"),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "XXXXXXXXXXXXXXXXXXXXXXXX",
            "hooks.slack.com/services",
        ),
    ],
)
def test_mask_url(url: str, hidden: str, shown: str) -> None:
    masked = mask_url(url)
    assert hidden not in masked
    assert shown in masked
