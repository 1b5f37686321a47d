"""``POST /api/enforcement/check`` answers allow / block / throttle / route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.control._app import client_for
from tests.control._limits_app import LimitsGw, start_limits_gw, stop_limits_gw

from tollhouse.guard.guardrails import RequestScope
from tollhouse.guard.limits import Ask
from tollhouse.guard.limits_config import LimitsConfig, ScopeLimits

CHECK = "/api/enforcement/check"


@pytest.fixture
async def lgw(db_url: str) -> AsyncIterator[LimitsGw]:
    cfg = LimitsConfig(
        max_wait_ms=0, agents={"agent-9": ScopeLimits(budget_requests=1, period="daily")}
    )
    g = await start_limits_gw(db_url, cfg)
    try:
        yield g
    finally:
        await stop_limits_gw(g)


@pytest.fixture
async def api(lgw: LimitsGw) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(lgw) as c:
        yield c


async def rail(api: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> str:
    r = await api.post("/v1/guardrails", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


def tokens(value: int, team: str = "Data Science", **extra: Any) -> dict[str, Any]:
    metric = {"type": "tokens", "unit": "tokens", "value": value, "window": "day"}
    return {"provider": "openai", "team": team, "agentId": "agent-123", "metric": metric, **extra}


async def spend(lgw: LimitsGw, team: str, tokens_used: int, model: str = "gpt-4") -> None:
    scope = RequestScope(team=team, model=model, provider="openai")
    adm = await lgw.limits.admit(Ask(scope, None, 0, tokens_used, 0))
    await lgw.limits.settle(adm, cost_micros=0, tokens=tokens_used)


async def test_each_action(lgw: LimitsGw, api: httpx.AsyncClient, admin: dict[str, str]) -> None:
    route_id = await rail(
        api,
        admin,
        name="GPT-4 tokens/day - Data Science",
        team="Data Science",
        models=["gpt-4"],
        limit_tokens=3_000_000,
        reset_interval="daily",
        action="route",
        route_target="gpt-4o-mini",
    )
    r = await api.post(CHECK, json=tokens(2_500_000, model="gpt-4"), headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "allowed": True,
        "action": "allow",
        "routeTarget": None,
        "guardrailId": None,
        "message": "within policy",
    }
    await spend(lgw, "Data Science", 1_000_000)
    r = await api.post(CHECK, json=tokens(2_500_000, model="gpt-4"), headers=admin)
    body = r.json()
    assert (body["allowed"], body["action"], body["routeTarget"], body["guardrailId"]) == (
        False,
        "route",
        "gpt-4o-mini",
        route_id,
    )
    assert body["message"].startswith("Reroute request according to guardrail GPT-4 tokens/day")
    # Another model is outside the guardrail's scope.
    r = await api.post(CHECK, json=tokens(2_500_000, model="gpt-4o-mini"), headers=admin)
    assert r.json()["action"] == "allow"

    throttle_id = await rail(
        api,
        admin,
        name="ML requests",
        team="ML",
        limit_requests=1,
        reset_interval="daily",
        action="throttle",
    )
    req = {"team": "ML", "metric": {"type": "requests", "value": 1}}
    assert (await api.post(CHECK, json=req, headers=admin)).json()["action"] == "allow"
    scope = RequestScope(team="ML")
    await lgw.limits.admit(Ask(scope, None, 0, 0, 0))  # in flight: held counts too
    r = await api.post(CHECK, json=req, headers=admin)
    assert (r.json()["action"], r.json()["guardrailId"]) == ("throttle", throttle_id)

    block_id = await rail(
        api, admin, name="Ops cost", team="Ops", limit_usd=1, reset_interval="monthly"
    )
    cost = {
        "team": "Ops",
        "metric": {"type": "cost", "unit": "usd", "value": 1.01, "window": "month"},
    }
    r = await api.post(CHECK, json=cost, headers=admin)
    assert (r.json()["allowed"], r.json()["action"], r.json()["guardrailId"]) == (
        False,
        "block",
        block_id,
    )
    cost["metric"]["value"] = 1.0
    assert (await api.post(CHECK, json=cost, headers=admin)).json()["action"] == "allow"
    cost["metric"]["window"] = "day"  # the guardrail's window is a month: not considered
    cost["metric"]["value"] = 5
    assert (await api.post(CHECK, json=cost, headers=admin)).json()["action"] == "allow"


async def test_config_budgets_and_allow_lists(
    lgw: LimitsGw, api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    req = {"agentId": "agent-9", "metric": {"type": "requests", "value": 2}}
    r = await api.post(CHECK, json=req, headers=admin)
    assert (r.json()["action"], r.json()["guardrailId"]) == ("block", None)
    assert "agent:agent-9 requests budget" in r.json()["message"]
    gid = await rail(api, admin, name="EU only", team="EU", allowed_providers=["mistral"])
    req = {"team": "EU", "provider": "openai", "metric": {"type": "tokens", "value": 1}}
    r = await api.post(CHECK, json=req, headers=admin)
    assert (r.json()["action"], r.json()["guardrailId"]) == ("block", gid)


async def test_virtual_key_caller_gets_its_assigned_guardrails(
    lgw: LimitsGw, api: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await api.post("/v1/keys", json={"name": "agent", "team": "T"}, headers=admin)
    raw, key_hash = r.json()["key"], r.json()["data"]["hash"]
    gid = await rail(api, admin, name="tiny", limit_tokens=10, action="throttle")
    await api.post(
        f"/v1/guardrails/{gid}/assignments/keys", json={"key_hashes": [key_hash]}, headers=admin
    )
    await lgw.keys.refresh(force=True)
    req = {"metric": {"type": "tokens", "value": 11}}
    r = await api.post(CHECK, json=req, headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 200, r.text
    assert (r.json()["action"], r.json()["guardrailId"]) == ("throttle", gid)
    r = await api.post(CHECK, json=req, headers=admin)  # the admin has no key scope
    assert r.json()["action"] == "allow"
    r = await api.post(CHECK, json=req)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "metric"),
        ({"metric": {"type": "watts", "value": 1}}, "metric.type"),
        ({"metric": {"type": "tokens", "value": -1}}, "metric.value"),
        ({"metric": {"type": "tokens", "value": "many"}}, "metric.value"),
        ({"metric": {"type": "tokens", "unit": "usd", "value": 1}}, "metric.unit"),
        ({"metric": {"type": "tokens", "value": 1, "window": "year"}}, "metric.window"),
        ({"metric": {"type": "tokens", "value": 1, "x": 1}}, "metric.x"),
        ({"team": 5, "metric": {"type": "tokens", "value": 1}}, "team"),
        ({"teams": "a", "metric": {"type": "tokens", "value": 1}}, "teams"),
    ],
)
async def test_bad_input_is_422_with_field(
    api: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any], field: str
) -> None:
    r = await api.post(CHECK, json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["fields"]
