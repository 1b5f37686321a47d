"""``GET /v1/metering/usage``: tokens and cost by model over a period, from spend rows."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.control._app import Gw

from tollhouse.control.keys import period_starts
from tollhouse.store.base import SpendRow


def row(rid: str, key: str, model: str, at: float, p: int, c: int, cost: int) -> SpendRow:
    return SpendRow(
        rid, key, model, "mock", model, at, prompt_tokens=p, completion_tokens=c, cost_micros=cost
    )


async def test_usage(gw: Gw, client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    a = (await client.post("/v1/keys", json={"name": "a"}, headers=admin)).json()
    b = (await client.post("/v1/keys", json={"name": "b"}, headers=admin)).json()
    ha, hb = a["data"]["hash"], b["data"]["hash"]
    now = time.time()
    month = period_starts(now)[2]
    await gw.store.insert_spend(
        [
            row("g1", ha, "m1", now - 1, 10, 20, 1_500_000),
            row("g2", ha, "m2", now - 1, 5, 1, 250_000),
            row("g3", hb, "m1", now - 1, 1, 2, 3),
            row("g4", ha, "m1", month - 10, 1000, 1000, 9_000_000),  # last month
        ]
    )
    r = await client.get("/v1/metering/usage", headers=admin)
    assert r.status_code == 200
    usage = r.json()["usage"]
    assert usage["inputTokens"] == 16 and usage["outputTokens"] == 23
    assert usage["requests"] == 3
    assert usage["estimatedCostUsd"] == pytest.approx(1.750003)
    assert usage["byModel"]["m1"] == {
        "requests": 2,
        "inputTokens": 11,
        "outputTokens": 22,
        "cachedTokens": 0,
        "estimatedCostUsd": pytest.approx(1.500003),
    }
    assert set(usage["byModel"]) == {"m1", "m2"}
    # all time, one key
    r = await client.get(f"/v1/metering/usage?from=0&key={ha}", headers=admin)
    assert r.json()["usage"]["inputTokens"] == 1015
    assert r.json()["period"]["from"] == "1970-01-01T00:00:00.000Z"
    # a virtual key sees its own usage only
    await gw.keys.refresh(force=True)
    mine = {"Authorization": f"Bearer {b['key']}"}
    r = await client.get("/v1/metering/usage?period=day", headers=mine)
    assert r.json()["usage"]["byModel"] == {
        "m1": {
            "requests": 1,
            "inputTokens": 1,
            "outputTokens": 2,
            "cachedTokens": 0,
            "estimatedCostUsd": pytest.approx(3e-6),
        }
    }
    r = await client.get(f"/v1/metering/usage?key={ha}", headers=mine)
    assert r.status_code == 422
    assert (await client.get("/v1/metering/usage")).status_code == 401


@pytest.mark.parametrize(
    "query", ["period=year", "period=day&from=0", "from=10&to=5", "from=soon", "to=1e400"]
)
async def test_bad_period_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], query: str
) -> None:
    r = await client.get(f"/v1/metering/usage?{query}", headers=admin)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["fields"]
