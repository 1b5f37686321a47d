"""``GET /v1/credits``: total limit and usage for the admin, or the calling key's own."""

from __future__ import annotations

import time

import httpx
from tests.control._app import Gw

from tollhouse.store.base import SpendRow


def row(rid: str, key_hash: str, cost: int, at: float) -> SpendRow:
    return SpendRow(rid, key_hash, "m", "p", "m", at, cost_micros=cost)


async def test_credits(gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    a = await client.post(
        "/v1/keys", json={"name": "a", "limit": 10, "limit_reset": "daily"}, headers=admin
    )
    b = await client.post("/v1/keys", json={"name": "b", "limit": 2.5}, headers=admin)
    c = await client.post("/v1/keys", json={"name": "c"}, headers=admin)
    ha, hb = a.json()["data"]["hash"], b.json()["data"]["hash"]
    now = time.time()
    await gw.store.insert_spend(
        [
            row("g1", ha, 1_250_000, now),
            row("g2", ha, 500_000, now - 3 * 86_400),  # an earlier day
            row("g3", hb, 250_000, now),
        ]
    )
    r = await client.get("/v1/credits", headers=admin)
    assert r.status_code == 200
    assert r.json() == {"data": {"total_credits": 12.5, "total_usage": 2.0}}
    await gw.keys.refresh(force=True)
    r = await client.get("/v1/credits", headers={"Authorization": f"Bearer {a.json()['key']}"})
    assert r.json() == {"data": {"total_credits": 10.0, "total_usage": 1.25}}
    r = await client.get("/v1/credits", headers={"Authorization": f"Bearer {c.json()['key']}"})
    assert r.json() == {"data": {"total_credits": 0.0, "total_usage": 0.0}}
    r = await client.get("/v1/credits")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_key"
