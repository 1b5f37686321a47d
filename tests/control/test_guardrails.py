"""``/v1/guardrails`` over a real SQLite store: CRUD, assignments, validation, caches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.control._app import client_for
from tests.control._limits_app import LimitsGw, start_limits_gw, stop_limits_gw

from tollhouse.control.guardrails import LimitsGateway
from tollhouse.guard.guardrail_store import GuardrailCache, GuardrailStore
from tollhouse.store import open_store


@pytest.fixture
async def lgw(db_url: str) -> AsyncIterator[LimitsGw]:
    g = await start_limits_gw(db_url)
    try:
        yield g
    finally:
        await stop_limits_gw(g)


@pytest.fixture
async def api(lgw: LimitsGw) -> AsyncIterator[httpx.AsyncClient]:
    assert isinstance(lgw, LimitsGateway)
    async with client_for(lgw) as c:
        yield c


async def new_key(api: httpx.AsyncClient, admin: dict[str, str], name: str = "k") -> str:
    r = await api.post("/v1/keys", json={"name": name}, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["hash"])


async def test_crud_round_trip(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body: dict[str, Any] = {
        "name": "Data Science GPT-4",
        "description": "daily cap",
        "limit_usd": 12.5,
        "reset_interval": "daily",
        "allowed_models": ["gpt-4o", "gpt-4o-mini"],
        "allowed_providers": ["openai"],
        "ignored_providers": ["azure"],
        "enforce_zdr": True,
        "team": "Data Science",
        "limit_tokens": 2_500_000,
        "action": "route",
        "route_target": "gpt-4o-mini",
    }
    r = await api.post("/v1/guardrails", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()["data"]
    gid = created["id"]
    for name, value in body.items():
        assert created[name] == value, name
    assert created["created_at"].endswith("Z") and created["updated_at"] is None

    r = await api.get(f"/v1/guardrails/{gid}", headers=admin)
    assert r.json()["data"] == created

    r = await api.patch(
        f"/v1/guardrails/{gid}", json={"limit_usd": None, "name": "renamed"}, headers=admin
    )
    assert r.status_code == 200, r.text
    patched = r.json()["data"]
    assert (patched["name"], patched["limit_usd"], patched["limit_tokens"]) == (
        "renamed",
        None,
        2_500_000,
    )
    assert patched["updated_at"] is not None

    await api.post("/v1/guardrails", json={"name": "second"}, headers=admin)
    r = await api.get("/v1/guardrails", params={"limit": 1}, headers=admin)
    assert r.json()["total_count"] == 2 and len(r.json()["data"]) == 1
    r = await api.get("/v1/guardrails", params={"offset": 1}, headers=admin)
    assert [g["name"] for g in r.json()["data"]] == ["second"]

    r = await api.delete(f"/v1/guardrails/{gid}", headers=admin)
    assert r.json() == {"deleted": True}
    assert (await api.get(f"/v1/guardrails/{gid}", headers=admin)).status_code == 404
    assert (await api.delete(f"/v1/guardrails/{gid}", headers=admin)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "required"),
        ({"name": ""}, "name", "non-empty"),
        ({"name": "x", "limit_usd": -1}, "limit_usd", "non-negative"),
        ({"name": "x", "limit_usd": "5"}, "limit_usd", "number"),
        ({"name": "x", "reset_interval": "hourly"}, "reset_interval", "daily, weekly"),
        ({"name": "x", "allowed_models": "gpt-4o"}, "allowed_models", "array"),
        ({"name": "x", "allowed_providers": [1]}, "allowed_providers", "array"),
        ({"name": "x", "enforce_zdr": "yes"}, "enforce_zdr", "true or false"),
        ({"name": "x", "action": "explode"}, "action", "block, throttle or route"),
        ({"name": "x", "action": "route"}, "route_target", "required when action is route"),
        ({"name": "x", "limit_tokens": 1.5}, "limit_tokens", "integer"),
        ({"name": "x", "colour": "red"}, "colour", "unknown field"),
    ],
)
async def test_bad_input_gets_422_with_field_message(
    api: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any], field: str, message: str
) -> None:
    r = await api.post("/v1/guardrails", json=body, headers=admin)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert message in err["fields"][field]


async def test_malformed_requests(api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await api.post("/v1/guardrails", content=b"{nope", headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = await api.post("/v1/guardrails", json=[1], headers=admin)
    assert r.status_code == 422
    assert (await api.get("/v1/guardrails/not-a-uuid", headers=admin)).status_code == 404
    r = await api.get("/v1/guardrails", params={"limit": 1000}, headers=admin)
    assert r.status_code == 400
    r = await api.get("/v1/guardrails")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_key"
    r = await api.get("/v1/guardrails", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_assignments(lgw: LimitsGw, api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    gid = (await api.post("/v1/guardrails", json={"name": "g"}, headers=admin)).json()["data"]["id"]
    k1, k2 = await new_key(api, admin, "a"), await new_key(api, admin, "b")
    url = f"/v1/guardrails/{gid}/assignments"
    r = await api.post(f"{url}/keys", json={"key_hashes": [k1, k2, k1]}, headers=admin)
    assert r.json() == {"assigned_count": 2}
    r = await api.post(f"{url}/keys", json={"key_hashes": [k1]}, headers=admin)
    assert r.json() == {"assigned_count": 0}  # already assigned
    r = await api.post(f"{url}/members", json={"member_user_ids": ["u1", "u2"]}, headers=admin)
    assert r.json() == {"assigned_count": 2}

    r = await api.get(f"{url}/keys", headers=admin)
    assert r.json()["total_count"] == 2
    assert {row["key_hash"] for row in r.json()["data"]} == {k1, k2}
    assert all(row["guardrail_id"] == gid for row in r.json()["data"])
    r = await api.get("/v1/guardrails/assignments/members", headers=admin)
    assert [row["member_user_id"] for row in r.json()["data"]] == ["u1", "u2"]

    cached = {g.id: g for g in lgw.guardrails()}[gid]
    assert cached.key_hashes == {k1, k2} and cached.member_user_ids == {"u1", "u2"}

    r = await api.post(f"{url}/keys/remove", json={"key_hashes": [k1, k1]}, headers=admin)
    assert r.json() == {"unassigned_count": 1}
    r = await api.post(f"{url}/members/remove", json={"member_user_ids": ["zz"]}, headers=admin)
    assert r.json() == {"unassigned_count": 0}
    r = await api.get("/v1/guardrails/assignments/keys", headers=admin)
    assert [row["key_hash"] for row in r.json()["data"]] == [k2]

    bad = [
        ({"key_hashes": []}, "key_hashes"),
        ({"key_hashes": ["short"]}, "key_hashes"),
        ({"key_hashes": ["f" * 64]}, "key_hashes"),  # well-formed but no such key
        ({"key_hashes": [k1], "extra": 1}, "extra"),
    ]
    for body, field in bad:
        r = await api.post(f"{url}/keys", json=body, headers=admin)
        assert r.status_code == 422 and field in r.json()["error"]["fields"], body
    r = await api.post(f"{url}/members", json={"member_user_ids": [""]}, headers=admin)
    assert r.status_code == 422
    missing = "00000000-0000-4000-8000-000000000000"
    r = await api.post(
        f"/v1/guardrails/{missing}/assignments/keys", json={"key_hashes": [k1]}, headers=admin
    )
    assert r.status_code == 404
    await api.delete(f"/v1/guardrails/{gid}", headers=admin)
    r = await api.get("/v1/guardrails/assignments/keys", headers=admin)
    assert r.json()["total_count"] == 0  # deleting a guardrail drops its assignments


async def test_other_workers_see_changes_within_their_interval(
    lgw: LimitsGw, api: httpx.AsyncClient, admin: dict[str, str], db_url: str
) -> None:
    other_store = open_store(db_url)
    await other_store.open()
    other = GuardrailCache(GuardrailStore(other_store), refresh_interval=0.1)
    await other.start()
    try:
        r = await api.post("/v1/guardrails", json={"name": "shared"}, headers=admin)
        gid = r.json()["data"]["id"]
        for _ in range(50):
            if any(g.id == gid for g in other()):
                break
            await asyncio.sleep(0.05)
        assert [g.name for g in other()] == ["shared"]
    finally:
        await other.stop()
        await other_store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_store_round_trip_on_both_backends(
    backend: str, request: pytest.FixtureRequest, db_url: str
) -> None:
    from tollhouse.guard import guardrails as model

    url = db_url if backend == "sqlite" else request.getfixturevalue("postgres_url")
    store = open_store(url)
    await store.open()
    try:
        repo = GuardrailStore(store)
        v0 = await repo.version()
        g = model.create({"name": "pg", "limit_usd": 1.5, "models": ["gpt-4*"]})
        await repo.create(g)
        assert await repo.version() == v0 + 1
        assert await repo.assign(g.id, "key", ["a" * 64, "b" * 64]) == 2
        assert await repo.assign(g.id, "key", ["a" * 64]) == 0
        assert await repo.assign(g.id, "member", ["u"]) == 1
        got = await repo.get(g.id)
        assert got is not None and got.key_hashes == {"a" * 64, "b" * 64}
        assert (got.limit_micros, got.models, got.member_user_ids) == (
            1_500_000,
            ("gpt-4*",),
            {"u"},
        )
        assert await repo.update(model.update(got, {"action": "throttle"}))
        rows, total = await repo.assignments("key", g.id, 0, 1)
        assert total == 2 and len(rows) == 1
        assert await repo.unassign(g.id, "key", ["a" * 64]) == 1
        page, count = await repo.page()
        assert count == 1 and page[0].action == "throttle" and page[0].key_hashes == {"b" * 64}
        assert await repo.delete(g.id)
        assert await repo.all() == []
        assert (await repo.assignments("member", None))[1] == 0
    finally:
        await store.close()
