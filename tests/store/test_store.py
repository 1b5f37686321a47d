"""The ``Store`` contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from tollhouse.errors import ConfigError, Conflict, ValidationError
from tollhouse.store import KeyRecord, SpendRow, SqlStore, open_store
from tollhouse.store._migrations import migrations

DAY = 86_400.0


def make_key(hash_: str = "a" * 64, **kw: object) -> KeyRecord:
    now = time.time()
    fields: dict[str, object] = {
        "hash": hash_,
        "name": "ci",
        "label": "gk_abcd...wxyz",
        "created_at": now,
        "updated_at": now,
    }
    fields.update(kw)
    return KeyRecord(**fields)  # type: ignore[arg-type]


def make_row(id_: str, key_hash: str = "a" * 64, **kw: object) -> SpendRow:
    fields: dict[str, object] = {
        "id": id_,
        "key_hash": key_hash,
        "model": "gpt-4o-mini",
        "provider": "up",
        "upstream_model": "gpt-4o-mini-2024",
        "created_at": time.time(),
    }
    fields.update(kw)
    return SpendRow(**fields)  # type: ignore[arg-type]


async def test_key_round_trip(store: SqlStore) -> None:
    key = make_key(
        limit_micros=5_000_000,
        limit_reset="daily",
        rpm=60,
        tpm=10_000,
        models=("gpt-4o-mini", "mock-*"),
        team="ml",
        expires_at=time.time() + 3600,
        metadata={"owner": "ana", "n": 3},
    )
    await store.create_key(key)
    assert await store.get_key(key.hash) == key
    assert await store.get_key("b" * 64) is None
    assert await store.all_keys() == [key]


async def test_duplicate_key_is_a_conflict(store: SqlStore) -> None:
    await store.create_key(make_key())
    with pytest.raises(Conflict):
        await store.create_key(make_key(name="other"))
    assert len(await store.all_keys()) == 1


async def test_every_key_change_moves_the_version(store: SqlStore) -> None:
    v0 = await store.keys_version()
    await store.create_key(make_key())
    v1 = await store.keys_version()
    await store.update_key("a" * 64, {"disabled": True})
    v2 = await store.keys_version()
    await store.delete_key("a" * 64)
    v3 = await store.keys_version()
    assert v0 < v1 < v2 < v3


async def test_update_key(store: SqlStore) -> None:
    key = make_key(models=("a",))
    await store.create_key(key)
    updated = await store.update_key(
        key.hash,
        {"name": "renamed", "disabled": True, "limit_micros": 7, "models": None, "rpm": None},
    )
    assert updated is not None
    assert updated.name == "renamed" and updated.disabled and updated.limit_micros == 7
    assert updated.models is None
    assert updated.updated_at >= key.updated_at
    assert updated.created_at == key.created_at
    assert await store.get_key(key.hash) == updated
    assert await store.update_key("f" * 64, {"name": "x"}) is None


async def test_update_rejects_unknown_fields(store: SqlStore) -> None:
    await store.create_key(make_key())
    with pytest.raises(ValidationError) as info:
        await store.update_key("a" * 64, {"hash": "b" * 64, "bogus": 1})
    assert set(info.value.fields) == {"hash", "bogus"}


async def test_delete_key(store: SqlStore) -> None:
    await store.create_key(make_key())
    assert await store.delete_key("a" * 64) is True
    assert await store.delete_key("a" * 64) is False
    assert await store.get_key("a" * 64) is None


async def test_list_keys_pages_and_filters(store: SqlStore) -> None:
    base = time.time()
    for i in range(5):
        await store.create_key(
            make_key(f"{i:064x}", name=f"k{i}", created_at=base + i, disabled=i == 2)
        )
    names = [k.name for k in await store.list_keys()]
    assert names == ["k0", "k1", "k2", "k3", "k4"]
    assert [k.name for k in await store.list_keys(offset=1, limit=2)] == ["k1", "k2"]
    assert [k.name for k in await store.list_keys(include_disabled=False)] == [
        "k0",
        "k1",
        "k3",
        "k4",
    ]
    assert await store.list_keys(offset=10) == []


async def test_spend_round_trip_and_idempotent_insert(store: SqlStore) -> None:
    row = make_row(
        "gen-1",
        prompt_tokens=12,
        completion_tokens=30,
        cached_tokens=4,
        cost_micros=1234,
        latency_ms=81.5,
        ttft_ms=20.25,
        status=200,
        streamed=True,
        cancelled=True,
        finish_reason="stop",
        team="ml",
        metadata={"user": "u1"},
    )
    await store.insert_spend([row])
    # The writer may retry a batch whose commit it did not see: same id, no second row.
    await store.insert_spend([replace(row, cost_micros=999_999), make_row("gen-2")])
    assert await store.get_generation("gen-1") == row
    assert await store.get_generation("missing") is None
    assert await store.key_spend_since("a" * 64, 0) == 1234
    await store.insert_spend([])


async def test_error_rows_keep_their_code(store: SqlStore) -> None:
    await store.insert_spend([make_row("e1", status=502, error_code="provider_error")])
    got = await store.get_generation("e1")
    assert got is not None and got.status == 502 and got.error_code == "provider_error"
    assert got.ttft_ms is None and got.finish_reason is None


async def test_key_spend_since_and_usage(store: SqlStore) -> None:
    now = time.time()
    a, b = "a" * 64, "b" * 64
    await store.insert_spend(
        [
            make_row("1", a, cost_micros=100, created_at=now - 40 * DAY),
            make_row("2", a, cost_micros=20, created_at=now - 3 * DAY),
            make_row("3", a, cost_micros=3, created_at=now - 60),
            make_row("4", b, cost_micros=5_000_000_000, created_at=now - 60),
        ]
    )
    assert await store.key_spend_since(a, 0) == 123
    assert await store.key_spend_since(a, now - 7 * DAY) == 23
    assert await store.key_spend_since(a, now - DAY) == 3
    assert await store.key_spend_since("c" * 64, 0) == 0
    usage = await store.key_usage([a, b, "c" * 64], [0, now - 7 * DAY, now - DAY])
    assert usage == {a: [123, 23, 3], b: [5_000_000_000] * 3, "c" * 64: [0, 0, 0]}
    assert await store.key_usage([], [0]) == {}


async def test_activity_groups_by_day_and_model(store: SqlStore) -> None:
    day0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    a, b = "a" * 64, "b" * 64
    await store.insert_spend(
        [
            make_row("1", a, created_at=day0 + 10, cost_micros=5, prompt_tokens=1),
            make_row("2", a, created_at=day0 + 20, cost_micros=7, completion_tokens=2),
            make_row("3", a, created_at=day0 + DAY + 5, cost_micros=1, model="mock-1"),
            make_row("4", b, created_at=day0 + 30, cost_micros=100, cached_tokens=9),
            make_row("5", a, created_at=day0 - DAY, cost_micros=1000),
        ]
    )
    rows = await store.activity(a, day0)
    assert rows == [
        {
            "date": "2026-01-02",
            "model": "mock-1",
            "provider_name": "up",
            "requests": 1,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cached_tokens": 0,
            "cost_micros": 1,
        },
        {
            "date": "2026-01-01",
            "model": "gpt-4o-mini",
            "provider_name": "up",
            "requests": 2,
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "cached_tokens": 0,
            "cost_micros": 12,
        },
    ]
    everyone = await store.activity(None, day0)
    first_day = [r for r in everyone if r["date"] == "2026-01-01"]
    assert first_day[0]["requests"] == 3 and first_day[0]["cost_micros"] == 112


async def test_data_survives_a_restart(store_url: str) -> None:
    first = open_store(store_url)
    await first.open()
    await first.create_key(make_key())
    await first.insert_spend([make_row("gen-1", cost_micros=42)])
    await first.close()
    assert await first.ping() is False

    second = open_store(store_url)
    await second.open()
    try:
        assert await second.key_spend_since("a" * 64, 0) == 42
        assert (await second.get_key("a" * 64)) is not None
        assert await second.ping() is True
    finally:
        await second.close()


async def test_migrations_apply_once_with_concurrent_openers(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        rows = await stores[0]._fetch("SELECT version, name FROM schema_migrations")
        shipped = [(m.version, m.name) for m in migrations(stores[0].dialect)]
        assert sorted(rows) == shipped and shipped[0] == (1, "init")
        assert await stores[1].keys_version() == 0
    finally:
        for s in stores:
            await s.close()


async def test_sqlite_rejects_missing_directory(tmp_path: object) -> None:
    with pytest.raises(ConfigError):
        await open_store(f"sqlite:///{tmp_path}/no/such/dir/t.db").open()
    with pytest.raises(ConfigError):
        open_store("mysql://x")


async def test_the_daily_rollup_agrees_with_the_rows(store: SqlStore) -> None:
    day0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    a, b = "a" * 64, "b" * 64
    rows = [
        make_row("1", a, created_at=day0 + 5, cost_micros=10),
        make_row("2", a, created_at=day0 + DAY - 0.001, cost_micros=20),
        make_row("3", a, created_at=day0 + DAY, cost_micros=40),
        make_row("4", b, created_at=day0 + 2 * DAY + 1, cost_micros=80),
        make_row("5", a, created_at=day0 + 9 * DAY, cost_micros=160),
    ]
    await store.insert_spend(rows[:3])
    # A retried batch (same ids) plus new rows: nothing is counted twice.
    await store.insert_spend([*rows[1:3], *rows[3:], rows[4]])
    daily = await store._fetch("SELECT key_hash, day, requests, cost_micros FROM spend_daily")
    first = int(day0 // DAY)
    assert sorted(tuple(int(v) if i else v for i, v in enumerate(r)) for r in daily) == [
        (a, first, 2, 30),
        (a, first + 1, 1, 40),
        (a, first + 9, 1, 160),
        (b, first + 2, 1, 80),
    ]
    aligned = [0.0, day0, day0 + DAY, day0 + 9 * DAY]  # rollup path
    raw = [s - 0.0005 if s else 0.0005 for s in aligned]  # row path, same answers here
    from_rollup = await store.key_usage([a, b], aligned)
    from_rows = await store.key_usage([a, b], raw)
    assert from_rollup == from_rows == {a: [230, 230, 200, 160], b: [80, 80, 80, 0]}
    assert await store.key_spend_since(a, day0 + DAY) == 200
    assert await store.key_spend_since(a, day0 + DAY - 0.002) == 220
    # Day-aligned questions are answered by the rollup alone.
    await store._transaction([("DELETE FROM spend", ())])
    assert await store.key_usage([a], aligned) == {a: [230, 230, 200, 160]}
    assert await store.key_usage([a], raw) == {a: [0, 0, 0, 0]}


async def test_the_rollup_migration_backfills_existing_spend(store_url: str) -> None:
    s = open_store(store_url)
    await s.open()
    day0 = 1_767_225_600.0
    await s.insert_spend(
        [
            make_row("1", created_at=day0 + 1, cost_micros=3),
            make_row("2", created_at=day0 + 2, cost_micros=4),
            make_row("3", created_at=day0 + DAY + 1, cost_micros=5),
        ]
    )
    # Back to the schema before 0003, with spend rows already there.
    await s._transaction(
        [("DROP TABLE spend_daily", ()), ("DELETE FROM schema_migrations WHERE version = 3", ())]
    )
    await s.close()
    again = open_store(store_url)
    await again.open()
    try:
        usage = await again.key_usage(["a" * 64], [0.0, day0 + DAY])
        assert usage == {"a" * 64: [12, 5]}
    finally:
        await again.close()
