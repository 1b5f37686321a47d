"""Virtual keys: generation, hashing and the in-memory cache the hot path authenticates from.

A raw key is ``gk_`` + 28 random base62 characters (~166 bits) + a 6-character base62
CRC-32 of that body.  The checksum lets tools (the CLI, secret scanners) tell a key from
a typo offline; only the SHA-256 hex digest of the whole key is ever stored.

``KeyCache.authenticate`` is synchronous and touches memory only.  A background task
polls ``store.keys_version()`` and reloads the whole table when it changes, so a key
revoked through any worker (or the CLI) stops working everywhere within about one
refresh interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
import zlib
from collections.abc import Mapping

from tollhouse.errors import InvalidKey
from tollhouse.store.base import KeyRecord, Store

log = logging.getLogger(__name__)

KEY_PREFIX = "gk_"
BODY_LEN = 28
CHECKSUM_LEN = 6
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_LEN = len(KEY_PREFIX) + BODY_LEN + CHECKSUM_LEN
_KEY_RE = re.compile(rf"^gk_[0-9A-Za-z]{{{BODY_LEN + CHECKSUM_LEN}}}$")


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LEN)


def generate_key() -> str:
    """A new raw virtual key; show it once, store only ``hash_key(raw)``."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(BODY_LEN))
    return KEY_PREFIX + body + _checksum(body)


def hash_key(raw: str) -> str:
    """SHA-256 hex digest of the raw key: the key's identity in the store and the API."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def is_well_formed(raw: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about existence)."""
    if _KEY_RE.match(raw) is None:
        return False
    body = raw[len(KEY_PREFIX) : len(KEY_PREFIX) + BODY_LEN]
    return secrets.compare_digest(raw[-CHECKSUM_LEN:], _checksum(body))


def key_label(raw: str) -> str:
    """A recognisable, non-secret preview of a key (``gk_AbCd...wXyZ``).

    It shows four random characters and the four last checksum characters, which leaves
    more than 140 random bits hidden.
    """
    return f"{raw[: len(KEY_PREFIX) + 4]}...{raw[-4:]}"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer X`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class KeyCache:
    """All keys in memory, refreshed from the store when ``keys_version`` moves."""

    def __init__(self, store: Store, refresh_interval: float = 0.5) -> None:
        self._store = store
        self.refresh_interval = refresh_interval
        self._by_hash: Mapping[str, KeyRecord] = {}
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self.refresh_failures = 0

    async def start(self) -> None:
        await self.refresh(force=True)
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._poll(), name="tollhouse-key-cache")

    async def stop(self) -> None:
        """End the poll loop by its flag (a cancel mid-query may come back as a store
        error and be lost); cancel only if it does not end within a few seconds."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=5.0)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload when the store's key version moved (or always with ``force``).

        Returns whether the table was reloaded.
        """
        async with self._lock:
            version = await self._store.keys_version()
            if not force and version == self._version:
                return False
            records = await self._store.all_keys()
            # One reference swap: readers on the hot path see the old or the new table.
            self._by_hash = {r.hash: r for r in records}
            self._version = version
            return True

    async def _poll(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_interval):
                    await self._stop.wait()
            if self._stop.is_set():
                return
            try:
                await self.refresh()
            except Exception as exc:  # keep serving from the last good table
                self.refresh_failures += 1
                log.warning("key cache refresh failed (%s); serving the last table", exc)

    def __len__(self) -> int:
        return len(self._by_hash)

    def stats(self) -> dict[str, int]:
        """For metrics: keys cached, the store version they reflect, failed refreshes."""
        return {
            "keys": len(self._by_hash),
            "version": -1 if self._version is None else self._version,
            "refresh_failures": self.refresh_failures,
        }

    def get(self, key_hash: str) -> KeyRecord | None:
        return self._by_hash.get(key_hash)

    def authenticate(self, raw_key: str | None) -> KeyRecord:
        """The key record for a raw key, or ``InvalidKey`` (never names the key)."""
        if not raw_key:
            raise InvalidKey("missing API key: send 'Authorization: Bearer gk_...'")
        # Only hashes of generated (hence well-formed) keys are in the table, so a hit
        # proves the checksum too; the cheap shape test just avoids hashing junk.
        if len(raw_key) != KEY_LEN or not raw_key.startswith(KEY_PREFIX):
            raise InvalidKey("invalid API key")
        record = self._by_hash.get(hash_key(raw_key))
        if record is None:
            raise InvalidKey("invalid API key")
        if record.disabled:
            raise InvalidKey("API key is disabled")
        if record.expires_at is not None and record.expires_at <= time.time():
            raise InvalidKey("API key has expired")
        return record
