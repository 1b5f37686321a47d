"""``/v1/keys``: admin auth, validation, OpenRouter shapes, usage from spend rows."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tests.control._app import ADMIN, Gw, client_for, start_gw, stop_gw

from tollhouse.control.keys import period_starts
from tollhouse.errors import InvalidKey
from tollhouse.guard.keys import is_well_formed
from tollhouse.store import SpendRow

KEY_FIELDS = {
    "hash",
    "name",
    "label",
    "disabled",
    "limit",
    "limit_remaining",
    "limit_reset",
    "include_byok_in_limit",
    "usage",
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
    "byok_usage",
    "byok_usage_daily",
    "byok_usage_weekly",
    "byok_usage_monthly",
    "created_at",
    "updated_at",
    "expires_at",
    "creator_user_id",
}


def spend(key_hash: str, id_: str, micros: int, at: float) -> SpendRow:
    return SpendRow(
        id=id_,
        key_hash=key_hash,
        model="m",
        provider="p",
        upstream_model="m",
        created_at=at,
        cost_micros=micros,
    )


async def create(client: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("name", "ci")
    resp = await client.post("/v1/keys", json=body, headers=admin)
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN}"},
        {"Authorization": f"Bearer {ADMIN}x"},
        {"Authorization": f"Bearer {ADMIN[:-1]}"},
    ],
)
async def test_admin_routes_need_the_admin_key(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/v1/keys"),
        ("POST", "/v1/keys"),
        ("GET", f"/v1/keys/{'a' * 64}"),
        ("PATCH", f"/v1/keys/{'a' * 64}"),
        ("DELETE", f"/v1/keys/{'a' * 64}"),
    ]:
        resp = await client.request(method, path, headers=headers, json={"name": "x"})
        assert resp.status_code == 401, (method, path)
        err = resp.json()["error"]
        assert err["code"] == "invalid_key" and err["type"] == "gate_error"
        assert ADMIN[:-1] not in resp.text and "wrong" not in err["message"]


async def test_a_virtual_key_is_not_an_admin_key(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    raw = (await create(client, admin))["key"]
    resp = await client.get("/v1/keys", headers={"Authorization": f"Bearer {raw}"})
    assert resp.status_code == 401


async def test_no_admin_key_configured_disables_the_admin_api(db_url: str) -> None:
    gw = await start_gw(db_url, admin=None)
    try:
        async with client_for(gw) as c:
            resp = await c.get("/v1/keys", headers={"Authorization": "Bearer anything"})
        assert resp.status_code == 401
        assert "disabled" in resp.json()["error"]["message"]
    finally:
        await stop_gw(gw)


async def test_create_returns_the_key_once_and_it_works_at_once(
    client: httpx.AsyncClient, admin: dict[str, str], gw: Gw
) -> None:
    body = await create(
        client,
        admin,
        name="team-a",
        limit=5,
        limit_reset="monthly",
        rpm=60,
        tpm=1000,
        models=["gpt-4o-mini"],
        team="a",
        expires_at="2099-01-01T00:00:00Z",
        include_byok_in_limit=True,
        metadata={"owner": "ana"},
    )
    raw, data = body["key"], body["data"]
    assert is_well_formed(raw)
    assert data["hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert KEY_FIELDS <= set(data)
    assert raw not in str(data)
    assert data["name"] == "team-a" and data["disabled"] is False
    assert data["limit"] == 5.0 and data["limit_remaining"] == 5.0
    assert data["limit_reset"] == "monthly" and data["usage"] == 0.0
    assert data["expires_at"] == "2099-01-01T00:00:00.000Z"
    assert data["created_at"].endswith("Z")
    assert (data["rpm"], data["tpm"], data["models"], data["team"]) == (
        60,
        1000,
        ["gpt-4o-mini"],
        "a",
    )
    assert data["label"].startswith(raw[:7]) and raw[7:-4] not in data["label"]
    record = gw.keys.authenticate(raw)  # the creating worker sees it without waiting
    assert record.limit_micros == 5_000_000 and record.models == ("gpt-4o-mini",)
    stored = await gw.store.get_key(data["hash"])
    assert stored is not None and stored.limit_micros == 5_000_000


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name"}),
        ({"name": ""}, {"name"}),
        ({"name": 3}, {"name"}),
        ({"name": "x", "limit": -1}, {"limit"}),
        ({"name": "x", "limit": "5"}, {"limit"}),
        ({"name": "x", "limit": True}, {"limit"}),
        ({"name": "x", "limit_reset": "hourly"}, {"limit_reset"}),
        ({"name": "x", "expires_at": "2099-01-01T00:00:00+02:00"}, {"expires_at"}),
        ({"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, {"expires_at"}),
        ({"name": "x", "expires_at": "soon"}, {"expires_at"}),
        ({"name": "x", "rpm": 0}, {"rpm"}),
        ({"name": "x", "tpm": 1.5}, {"tpm"}),
        ({"name": "x", "models": "gpt-4o"}, {"models"}),
        ({"name": "x", "models": []}, {"models"}),
        ({"name": "x", "team": ""}, {"team"}),
        ({"name": "x", "metadata": [1]}, {"metadata"}),
        ({"name": "x", "include_byok_in_limit": "yes"}, {"include_byok_in_limit"}),
        ({"name": "x", "colour": "red"}, {"colour"}),
        ({"limit": -2, "rpm": -1}, {"name", "limit", "rpm"}),
    ],
)
async def test_create_validation(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any], fields: set[str]
) -> None:
    resp = await client.post("/v1/keys", json=body, headers=admin)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "validation_error"
    assert set(err["fields"]) == fields
    assert all(isinstance(m, str) and m for m in err["fields"].values())


async def test_bodies_that_are_not_json_objects(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    resp = await client.post("/v1/keys", content=b"{not json", headers=admin)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"
    resp = await client.post("/v1/keys", json=["name"], headers=admin)
    assert resp.status_code == 422 and resp.json()["error"]["fields"] == {
        "body": "expected a JSON object"
    }


async def test_list_get_patch_delete(
    client: httpx.AsyncClient, admin: dict[str, str], gw: Gw
) -> None:
    made = [await create(client, admin, name=f"k{i}") for i in range(3)]
    hashes = [m["data"]["hash"] for m in made]

    listed = (await client.get("/v1/keys", headers=admin)).json()["data"]
    assert [k["name"] for k in listed] == ["k0", "k1", "k2"]
    page = (await client.get("/v1/keys?offset=1&limit=1", headers=admin)).json()["data"]
    assert [k["name"] for k in page] == ["k1"]

    resp = await client.patch(
        f"/v1/keys/{hashes[1]}",
        json={"disabled": True, "name": "k1-off", "limit": 2.5},
        headers=admin,
    )
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["disabled"] is True and data["name"] == "k1-off" and data["limit"] == 2.5
    with pytest.raises(InvalidKey):
        gw.keys.authenticate(made[1]["key"])

    listed = (await client.get("/v1/keys", headers=admin)).json()["data"]
    assert [k["name"] for k in listed] == ["k0", "k2"]
    listed = (await client.get("/v1/keys?include_disabled=true", headers=admin)).json()["data"]
    assert [k["name"] for k in listed] == ["k0", "k1-off", "k2"]

    got = await client.get(f"/v1/keys/{hashes[2]}", headers=admin)
    assert got.status_code == 200 and got.json()["data"]["name"] == "k2"

    resp = await client.delete(f"/v1/keys/{hashes[0]}", headers=admin)
    assert resp.status_code == 200 and resp.json() == {"deleted": True}
    with pytest.raises(InvalidKey):
        gw.keys.authenticate(made[0]["key"])
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(method, f"/v1/keys/{hashes[0]}", headers=admin, json={})
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = await client.get("/v1/keys/not-a-hash", headers=admin)
    assert resp.status_code == 404


async def test_patch_validation(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    key_hash = (await create(client, admin))["data"]["hash"]
    resp = await client.patch(
        f"/v1/keys/{key_hash}", json={"disabled": "yes", "hash": "x"}, headers=admin
    )
    assert resp.status_code == 422
    assert set(resp.json()["error"]["fields"]) == {"disabled", "hash"}


# A 27-digit offset overflowed SQLite's integer (a 500, found by schemathesis).
BAD_QUERIES = [
    "offset=-1",
    "offset=x",
    "offset=" + "9" * 27,
    "limit=1000",
    "include_disabled=maybe",
]


@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_bad_list_queries(
    client: httpx.AsyncClient, admin: dict[str, str], query: str
) -> None:
    resp = await client.get(f"/v1/keys?{query}", headers=admin)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"


async def test_usage_and_limit_remaining_come_from_spend_rows(
    client: httpx.AsyncClient, admin: dict[str, str], gw: Gw
) -> None:
    daily = (await create(client, admin, name="d", limit=2, limit_reset="daily"))["data"]
    total = (await create(client, admin, name="t", limit=2))["data"]
    now = time.time()
    for data in (daily, total):
        await gw.store.insert_spend(
            [
                spend(data["hash"], data["name"] + "-today", 1_500_000, now - 1),
                spend(data["hash"], data["name"] + "-old", 10_000_000, now - 400 * 86_400),
            ]
        )
    for data, remaining in ((daily, 0.5), (total, 0.0)):
        got = (await client.get(f"/v1/keys/{data['hash']}", headers=admin)).json()["data"]
        assert got["usage"] == 11.5
        assert got["usage_daily"] == got["usage_weekly"] == got["usage_monthly"] == 1.5
        assert got["limit_remaining"] == remaining
    listed = (await client.get("/v1/keys", headers=admin)).json()["data"]
    assert [k["usage"] for k in listed] == [11.5, 11.5]


def test_period_starts_are_utc_day_monday_week_and_month() -> None:
    # Wednesday 2026-11-25 15:30 UTC
    now = datetime(2026, 11, 25, 15, 30, tzinfo=UTC).timestamp()
    day, week, month = period_starts(now)
    assert datetime.fromtimestamp(day, UTC) == datetime(2026, 11, 25, tzinfo=UTC)
    assert datetime.fromtimestamp(week, UTC) == datetime(2026, 11, 23, tzinfo=UTC)
    assert datetime.fromtimestamp(month, UTC) == datetime(2026, 11, 1, tzinfo=UTC)
