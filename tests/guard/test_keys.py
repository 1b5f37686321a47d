"""Virtual keys: format, checksum, hashing, and the in-memory cache's authentication."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tollhouse.errors import InvalidKey
from tollhouse.guard.keys import (
    KeyCache,
    bearer_token,
    generate_key,
    hash_key,
    is_well_formed,
    key_label,
)
from tollhouse.store import KeyRecord, SqlStore, open_store


def record_for(raw: str, **kw: object) -> KeyRecord:
    now = time.time()
    fields: dict[str, object] = {
        "hash": hash_key(raw),
        "name": "t",
        "label": key_label(raw),
        "created_at": now,
        "updated_at": now,
    }
    fields.update(kw)
    return KeyRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = open_store(f"sqlite:///{tmp_path}/keys.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def test_generated_keys_have_the_documented_shape() -> None:
    keys = {generate_key() for _ in range(500)}
    assert len(keys) == 500
    for raw in keys:
        assert raw.startswith("gk_") and len(raw) == 3 + 28 + 6
        assert raw[3:].isalnum() and raw.isascii()
        assert is_well_formed(raw)
    # 28 base62 characters carry log2(62) * 28 > 166 bits.
    assert 28 * 5.95 > 128


def test_checksum_catches_typos() -> None:
    raw = generate_key()
    for i in range(3, len(raw)):
        ch = "A" if raw[i] != "A" else "B"
        assert not is_well_formed(raw[:i] + ch + raw[i + 1 :]), i
    assert not is_well_formed(raw[:-1])
    assert not is_well_formed(raw + "x")
    assert not is_well_formed("sk_" + raw[3:])
    assert not is_well_formed("gk_" + "é" * 34)
    assert not is_well_formed("")


def test_hash_is_sha256_hex() -> None:
    raw = generate_key()
    assert hash_key(raw) == hashlib.sha256(raw.encode()).hexdigest()


def test_label_hides_most_of_the_key() -> None:
    raw = generate_key()
    label = key_label(raw)
    assert label.startswith(raw[:7]) and label.endswith(raw[-4:])
    assert raw[7:-4] not in label


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer gk_x", "gk_x"),
        ("bearer   gk_x  ", "gk_x"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_authenticate(store: SqlStore) -> None:
    good, disabled, expired, future = (generate_key() for _ in range(4))
    await store.create_key(record_for(good, name="good"))
    await store.create_key(record_for(disabled, disabled=True))
    await store.create_key(record_for(expired, expires_at=time.time() - 1))
    await store.create_key(record_for(future, expires_at=time.time() + 3600))
    cache = KeyCache(store)
    await cache.start()
    try:
        assert cache.authenticate(good).name == "good"
        assert cache.authenticate(future).hash == hash_key(future)
        unknown = generate_key()
        bad_checksum = good[:-1] + ("0" if good[-1] != "0" else "1")
        cases = {
            None: "missing",
            "": "missing",
            "gk_short": "invalid",
            bad_checksum: "invalid",
            unknown: "invalid",
            disabled: "disabled",
            expired: "expired",
        }
        for raw, word in cases.items():
            with pytest.raises(InvalidKey) as info:
                cache.authenticate(raw)
            assert info.value.status == 401 and info.value.code == "invalid_key"
            assert word in info.value.message
            if raw:
                assert raw not in info.value.message
    finally:
        await cache.stop()


async def test_revocation_reaches_another_worker_within_a_second(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    admin, worker = open_store(url), open_store(url)
    await admin.open()
    await worker.open()
    raw = generate_key()
    await admin.create_key(record_for(raw))
    cache = KeyCache(worker, refresh_interval=0.2)
    await cache.start()
    try:
        assert cache.authenticate(raw)
        await admin.update_key(hash_key(raw), {"disabled": True})
        revoked_at = time.monotonic()
        while True:
            try:
                cache.authenticate(raw)
            except InvalidKey:
                break
            assert time.monotonic() - revoked_at < 1.0, "revocation not seen within 1 s"
            await asyncio.sleep(0.01)
        # A key created elsewhere appears the same way.
        fresh = generate_key()
        await admin.create_key(record_for(fresh))
        await asyncio.sleep(0.5)
        assert cache.authenticate(fresh).hash == hash_key(fresh)
    finally:
        await cache.stop()
        await admin.close()
        await worker.close()


async def test_refresh_only_reloads_on_a_new_version(store: SqlStore) -> None:
    cache = KeyCache(store, refresh_interval=60)
    await cache.start()
    try:
        assert await cache.refresh() is False
        await store.create_key(record_for(generate_key()))
        assert await cache.refresh() is True
        assert len(cache) == 1
        assert cache.stats() == {
            "keys": 1,
            "version": await store.keys_version(),
            "refresh_failures": 0,
        }
    finally:
        await cache.stop()


async def test_a_failing_store_keeps_the_last_table(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/k.db")
    await s.open()
    raw = generate_key()
    await s.create_key(record_for(raw))
    cache = KeyCache(s, refresh_interval=0.02)
    await cache.start()
    try:
        await s.close()  # every refresh now fails
        await asyncio.sleep(0.2)
        assert cache.refresh_failures > 0
        assert cache.authenticate(raw).hash == hash_key(raw)
    finally:
        await cache.stop()


class CancelToError:
    """A store whose key-version read turns a cancellation into an error (in-process fake)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.polling = asyncio.Event()
        self.slow = False

    async def keys_version(self) -> int:
        if self.slow:
            self.polling.set()
            try:
                await asyncio.sleep(0.3)
            except asyncio.CancelledError:
                raise RuntimeError("connection closed while cancelling") from None
        return await self.store.keys_version()

    async def all_keys(self) -> list[KeyRecord]:
        return await self.store.all_keys()


async def test_stop_returns_even_if_the_store_swallows_the_cancel(store: SqlStore) -> None:
    fake = CancelToError(store)
    cache = KeyCache(fake, refresh_interval=0.01)  # type: ignore[arg-type]
    await cache.start()
    fake.slow = True
    await asyncio.wait_for(fake.polling.wait(), 5)
    started = time.monotonic()
    await asyncio.wait_for(cache.stop(), timeout=10)
    assert time.monotonic() - started < 2
