"""``/v1/key``, ``/v1/generation`` and ``/v1/activity`` for virtual keys and the admin key."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.control._app import Gw, client_for, start_gw, stop_gw
from tests.support.gateway import bearer

from tollhouse.store import SpendRow


async def new_key(client: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> tuple[str, str]:
    body.setdefault("name", "k")
    resp = await client.post("/v1/keys", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    return resp.json()["key"], resp.json()["data"]["hash"]


def row(key_hash: str, id_: str, *, at: float | None = None, **kw: Any) -> SpendRow:
    fields: dict[str, Any] = {
        "id": id_,
        "key_hash": key_hash,
        "model": "gpt-4o-mini",
        "provider": "up",
        "upstream_model": "gpt-4o-mini-2024-07-18",
        "created_at": time.time() if at is None else at,
    }
    fields.update(kw)
    return SpendRow(**fields)


async def test_current_key(client: httpx.AsyncClient, admin: dict[str, str], gw: Gw) -> None:
    raw, key_hash = await new_key(client, admin, name="me", limit=1, limit_reset="weekly", rpm=30)
    await gw.store.insert_spend([row(key_hash, "g1", cost_micros=250_000)])
    resp = await client.get("/v1/key", headers=bearer(raw))
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["label"].startswith(raw[:7]) and raw not in resp.text
    assert data["limit"] == 1.0 and data["usage"] == 0.25 and data["usage_weekly"] == 0.25
    assert data["limit_remaining"] == 0.75 and data["limit_reset"] == "weekly"
    assert data["is_management_key"] is False and data["is_free_tier"] is False
    assert data["rate_limit"]["requests"] == 30
    for field in ("usage_daily", "usage_monthly", "byok_usage", "expires_at"):
        assert field in data


async def test_current_key_rejects_bad_revoked_and_admin_keys(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    raw, key_hash = await new_key(client, admin)
    await client.patch(f"/v1/keys/{key_hash}", json={"disabled": True}, headers=admin)
    for headers in ({}, bearer("gk_nope"), bearer(raw), admin):
        resp = await client.get("/v1/key", headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_key"


async def test_generation(client: httpx.AsyncClient, admin: dict[str, str], gw: Gw) -> None:
    raw, key_hash = await new_key(client, admin)
    other_raw, other_hash = await new_key(client, admin)
    await gw.store.insert_spend(
        [
            row(
                key_hash,
                "gen-1",
                prompt_tokens=10,
                completion_tokens=20,
                cached_tokens=2,
                cost_micros=1234,
                latency_ms=300.0,
                ttft_ms=100.0,
                streamed=True,
                finish_reason="stop",
            ),
            row(other_hash, "gen-2"),
        ]
    )
    resp = await client.get("/v1/generation?id=gen-1", headers=bearer(raw))
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["id"] == "gen-1" and data["total_cost"] == 0.001234
    assert data["tokens_prompt"] == 10 and data["tokens_completion"] == 20
    assert data["native_tokens_cached"] == 2 and data["streamed"] is True
    assert data["provider_name"] == "up" and data["model"] == "gpt-4o-mini"
    assert data["latency"] == 300.0 and data["generation_time"] == 200.0
    assert data["finish_reason"] == "stop" and data["created_at"].endswith("Z")

    # Another key's generation is invisible; the admin key sees everything.
    assert (await client.get("/v1/generation?id=gen-2", headers=bearer(raw))).status_code == 404
    assert (
        await client.get("/v1/generation?id=gen-1", headers=bearer(other_raw))
    ).status_code == 404
    assert (await client.get("/v1/generation?id=gen-2", headers=admin)).status_code == 200
    assert (await client.get("/v1/generation?id=nope", headers=admin)).status_code == 404
    resp = await client.get("/v1/generation", headers=bearer(raw))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"
    assert (await client.get("/v1/generation?id=gen-1")).status_code == 401


async def test_generation_is_visible_before_the_writer_flushes(
    client: httpx.AsyncClient, admin: dict[str, str], gw: Gw
) -> None:
    raw, key_hash = await new_key(client, admin)
    gw.spend.submit(row(key_hash, "gen-queued", cost_micros=7))
    assert gw.spend.pending == 1
    resp = await client.get("/v1/generation?id=gen-queued", headers=bearer(raw))
    assert resp.status_code == 200 and resp.json()["data"]["total_cost"] == 0.000007


async def test_activity(client: httpx.AsyncClient, admin: dict[str, str], gw: Gw) -> None:
    raw, key_hash = await new_key(client, admin)
    _, other_hash = await new_key(client, admin)
    now = time.time()
    await gw.store.insert_spend(
        [
            row(key_hash, "a1", at=now - 5, cost_micros=1_000_000, prompt_tokens=3),
            row(key_hash, "a2", at=now - 4, cost_micros=500_000, completion_tokens=4),
            row(key_hash, "a3", at=now - 2 * 86_400, cost_micros=1, model="mock-1"),
            row(key_hash, "old", at=now - 40 * 86_400, cost_micros=99),
            row(other_hash, "b1", at=now - 5, cost_micros=2_000_000),
        ]
    )
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d")

    mine = (await client.get("/v1/activity", headers=bearer(raw))).json()["data"]
    assert [(r["date"], r["model"]) for r in mine] == [
        (today, "gpt-4o-mini"),
        (two_days_ago, "mock-1"),
    ]
    assert mine[0]["usage"] == 1.5 and mine[0]["requests"] == 2
    assert mine[0]["prompt_tokens"] == 3 and mine[0]["completion_tokens"] == 4
    assert mine[0]["provider_name"] == "up" and mine[0]["endpoint_id"] == "up/gpt-4o-mini"

    everyone = (await client.get("/v1/activity", headers=admin)).json()["data"]
    assert everyone[0]["usage"] == 3.5 and everyone[0]["requests"] == 3

    one_day = (await client.get(f"/v1/activity?date={two_days_ago}", headers=bearer(raw))).json()
    assert [r["model"] for r in one_day["data"]] == ["mock-1"]


@pytest.mark.parametrize("date", ["yesterday", "2026-13-01", "2000-01-01"])
async def test_activity_rejects_bad_dates(
    client: httpx.AsyncClient, admin: dict[str, str], date: str
) -> None:
    resp = await client.get(f"/v1/activity?date={date}", headers=admin)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"


async def test_usage_survives_a_restart(db_url: str, admin: dict[str, str]) -> None:
    gw = await start_gw(db_url)
    async with client_for(gw) as c:
        raw, key_hash = await new_key(c, admin)
    gw.spend.submit(row(key_hash, "persisted", cost_micros=420_000))
    await stop_gw(gw)  # the writer flushes on stop

    gw = await start_gw(db_url)
    try:
        async with client_for(gw) as c:
            data = (await c.get("/v1/key", headers=bearer(raw))).json()["data"]
            assert data["usage"] == 0.42
            gen = await c.get("/v1/generation?id=persisted", headers=bearer(raw))
            assert gen.status_code == 200
    finally:
        await stop_gw(gw)
