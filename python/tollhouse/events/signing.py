"""Standard Webhooks signatures: sign on the way out, ``verify`` for receivers.

``webhook-signature: v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">``.  A secret
of the form ``whsec_<base64>`` is base64-decoded first (the Standard Webhooks
convention, so their reference libraries verify our deliveries); any other secret is
used as its UTF-8 bytes.  The AnuraGate document names no signature headers of its own,
so only the standard set is sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

from tollhouse.config import Secret
from tollhouse.errors import ConfigError, InvalidSignature

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 -- a format prefix, not a secret
DEFAULT_TOLERANCE_S: Final = 300

SecretLike = Secret | str | bytes


def secret_bytes(secret: SecretLike) -> bytes:
    raw = secret.get() if isinstance(secret, Secret) else secret
    if isinstance(raw, bytes):
        return raw
    if raw.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(raw[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            raise ConfigError("webhook secret: whsec_ secret is not valid base64") from None
    return raw.encode()


def sign(secret: SecretLike, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: SecretLike | None, msg_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """Headers for one attempt; the timestamp is the attempt's, so retries re-sign."""
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/json",
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(ts),
    }
    if secret is not None:
        headers[HEADER_SIGNATURE] = sign(secret, msg_id, ts, body)
    return headers


def verify(
    secret: SecretLike,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> None:
    """Raise ``InvalidSignature`` unless one ``v1`` signature matches and the timestamp is
    within ``tolerance_s`` of ``now`` (both directions, against replays and clock skew)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get(HEADER_ID)
    ts_raw = lowered.get(HEADER_TIMESTAMP)
    sig_header = lowered.get(HEADER_SIGNATURE)
    if not msg_id or not ts_raw or not sig_header:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(ts_raw)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise InvalidSignature("webhook-timestamp is outside the tolerance window")
    expected = sign(secret, msg_id, ts, body).encode()
    # Several space-separated signatures may be present during a secret rotation.
    matched = False
    for candidate in sig_header.split():
        if hmac.compare_digest(candidate.encode(), expected):
            matched = True
    if not matched:
        raise InvalidSignature("no matching webhook signature")


def mask_url(url: str) -> str:
    """A URL safe to log: credentials, query values and token-like path segments hidden
    (Slack and Discord hooks carry their secret in the path)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = "****@" + netloc
    segments = [
        "****" if len(seg) >= 16 or any(c.isdigit() for c in seg) else seg
        for seg in parts.path.split("/")
    ]
    query = "&".join(
        f"{kv.split('=', 1)[0]}=****" if "=" in kv else "****"
        for kv in parts.query.split("&")
        if kv
    )
    return urlunsplit(SplitResult(parts.scheme, netloc, "/".join(segments), query, ""))
