"""Failover policies over HTTP (/v1/workspaces/{id}/failover-policies), their live
status, and breakers and policies shared by two gateways through a real Redis."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.routing._flaky import Flaky, Gate, gateway, provider

ADMIN = "adm_" + "failover" * 5
CHAT = {"model": "prod-chat", "messages": [{"role": "user", "content": "hi"}]}
POLICY = {
    "route_id": "prod-chat",
    "primary_endpoint": "anthropic-claude",
    "fallback_endpoints": ["bedrock-claude"],
    "conditions": {"latency_threshold_ms": 2000, "error_rate_threshold": 0.1},
}


@pytest.fixture
def ups() -> Iterator[tuple[Flaky, Flaky]]:
    with Flaky() as a, Flaky() as b:
        yield a, b


def config(a: Flaky, b: Flaky, **extra: Any) -> dict[str, Any]:
    return {
        "admin_key": ADMIN,
        "providers": {"anthropic-claude": provider(a.url), "bedrock-claude": provider(b.url)},
        "models": {
            "prod-chat": {
                "deployments": [
                    {"provider": "anthropic-claude", "model": "claude", "weight": 1000000},
                    {"provider": "bedrock-claude", "model": "claude-b", "weight": 1},
                ]
            }
        },
        **extra,
    }


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


async def workspace(c: httpx.AsyncClient) -> str:
    r = await c.post("/v1/workspaces", json={"name": "prod"}, headers=admin())
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


def client(g: Gate) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=g.app), base_url="http://gw")


@pytest.fixture
async def env(
    tmp_path: Path, ups: tuple[Flaky, Flaky]
) -> AsyncIterator[tuple[Gate, httpx.AsyncClient]]:
    async with gateway(tmp_path, config(*ups)) as g, client(g) as c:
        yield g, c


async def test_create_list_get_delete(env: tuple[Gate, httpx.AsyncClient]) -> None:
    _, c = env
    ws1, ws2 = await workspace(c), await workspace(c)
    r = await c.post(f"/v1/workspaces/{ws1}/failover-policies", json=POLICY, headers=admin())
    assert r.status_code == 201, r.text
    policy = r.json()
    assert policy["id"].startswith("failover-") and policy["status"] == "active"
    assert policy["route_id"] == "prod-chat"
    assert policy["fallback_endpoints"] == [{"id": "bedrock-claude", "status": "healthy"}]
    assert policy["primary_endpoint"] == {"id": "anthropic-claude", "status": "healthy"}
    assert policy["conditions"] == {"latency_threshold_ms": 2000.0, "error_rate_threshold": 0.1}
    assert policy["current_endpoint"] == "anthropic-claude"
    base = f"/v1/workspaces/{ws1}/failover-policies"
    r = await c.get(base, headers=admin())
    assert [p["id"] for p in r.json()["data"]] == [policy["id"]]
    r = await c.get(f"/v1/workspaces/{ws2}/failover-policies", headers=admin())
    assert r.json() == {"data": []}
    r = await c.get("/v1/workspaces/ws_missing/failover-policies", headers=admin())
    assert r.status_code == 404
    r = await c.get(f"{base}/{policy['id']}", headers=admin())
    assert r.status_code == 200 and r.json()["id"] == policy["id"]
    r = await c.delete(f"/v1/workspaces/{ws2}/failover-policies/{policy['id']}", headers=admin())
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await c.delete(f"{base}/{policy['id']}", headers=admin())
    assert r.status_code == 204
    r = await c.get(f"{base}/{policy['id']}", headers=admin())
    assert r.status_code == 404


async def test_validation_and_auth(env: tuple[Gate, httpx.AsyncClient]) -> None:
    g, c = env
    base = f"/v1/workspaces/{await workspace(c)}/failover-policies"
    bad = {**POLICY, "route_id": "nope", "conditions": {"error_rate_threshold": 3}}
    r = await c.post(base, json=bad, headers=admin())
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert set(err["fields"]) == {"route_id", "conditions.error_rate_threshold"}
    r = await c.post(base, json=[1], headers=admin())
    assert r.status_code == 422
    r = await c.post(base, content=b"{nope", headers=admin())
    assert r.status_code == 400
    r = await c.post(base, json=POLICY)
    assert r.status_code == 401
    r = await c.post(base, json=POLICY, headers={"Authorization": f"Bearer {g.key}"})
    assert r.status_code == 401  # a virtual key is not the admin key
    r = await c.get("/v1/workspaces/bad%20id/failover-policies", headers=admin())
    assert r.status_code == 422
    # workspace API keys: a viewer reads, an admin writes, another workspace's key neither
    ws = base.split("/")[3]
    keys = {}
    for role in ("viewer", "admin"):
        r = await c.post(
            f"/v1/workspaces/{ws}/api-keys", json={"name": role, "role": role}, headers=admin()
        )
        assert r.status_code == 201, r.text
        keys[role] = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (await c.get(base, headers=keys["viewer"])).status_code == 200
    assert (await c.post(base, json=POLICY, headers=keys["viewer"])).status_code == 403
    assert (await c.post(base, json=POLICY, headers=keys["admin"])).status_code == 201
    other = f"/v1/workspaces/{await workspace(c)}/failover-policies"
    assert (await c.get(other, headers=keys["admin"])).status_code == 403


async def test_error_rate_switches_traffic_and_status_is_live(
    env: tuple[Gate, httpx.AsyncClient], ups: tuple[Flaky, Flaky]
) -> None:
    g, c = env
    a, b = ups
    base = f"/v1/workspaces/{await workspace(c)}/failover-policies"
    body = {**POLICY, "conditions": {"error_rate_threshold": 0.5}}
    r = await c.post(base, json=body, headers=admin())
    pid = r.json()["id"]
    a.script(("status", 500), ("status", 500), ("status", 500))
    code, headers, _ = await g.chat(CHAT)  # 3 failures on the primary, then the fallback
    assert code == 200 and headers["x-gate-provider"] == "bedrock-claude"
    r = await c.get(f"{base}/{pid}", headers=admin())
    policy = r.json()
    assert policy["status"] == "failed_over" and policy["current_endpoint"] == "bedrock-claude"
    assert policy["primary_endpoint"]["status"] == "down"  # its breaker opened too
    assert "error rate" in policy["reason"] or policy["reason"] == "circuit open"
    for _ in range(3):
        _, headers, _ = await g.chat(CHAT)
        assert headers["x-gate-provider"] == "bedrock-claude"
    b.always = ("status", 503)
    await g.chat(CHAT)
    r = await c.get(f"{base}/{pid}", headers=admin())
    assert r.json()["fallback_endpoints"][0]["status"] in ("degraded", "down")


async def test_two_gateways_share_breakers_and_policies_through_redis(
    tmp_path: Path, ups: tuple[Flaky, Flaky], redis_url: str
) -> None:
    a, _ = ups
    tag = os.urandom(4).hex()  # deployment ids of our own in the shared Redis
    cfg = config(a, ups[1], counters=redis_url)
    cfg["providers"] = {
        f"p-{tag}": cfg["providers"]["anthropic-claude"],
        f"q-{tag}": cfg["providers"]["bedrock-claude"],
    }
    cfg["models"]["prod-chat"]["deployments"][0]["provider"] = f"p-{tag}"
    cfg["models"]["prod-chat"]["deployments"][1]["provider"] = f"q-{tag}"
    async with AsyncExitStack() as stack:
        # two gateways (replicas) over one store and one Redis
        one = await stack.enter_async_context(gateway(tmp_path, cfg))
        two = await stack.enter_async_context(gateway(tmp_path, cfg))
        c1 = await stack.enter_async_context(client(one))
        c2 = await stack.enter_async_context(client(two))
        assert one.gw.router.shared is not None
        base = f"/v1/workspaces/{await workspace(c1)}/failover-policies"
        policy = {**POLICY, "primary_endpoint": f"p-{tag}", "fallback_endpoints": [f"q-{tag}"]}
        r = await c1.post(base, json=policy, headers=admin())
        assert r.status_code == 201
        r = await c2.get(base, headers=admin())
        assert [p["id"] for p in r.json()["data"]] == [r.json()["data"][0]["id"]]
        pid = r.json()["data"][0]["id"]
        # gateway one sees the primary fail: its breaker opens, and so does two's
        a.always = ("status", 500)
        code, headers, _ = await one.chat(CHAT)
        assert code == 200 and headers["x-gate-provider"] == f"q-{tag}"
        breaker_two = two.gw.router.board.get(f"p-{tag}/claude")
        for _ in range(40):
            if breaker_two.state == "open":
                break
            await asyncio.sleep(0.05)
        assert breaker_two.state == "open"
        seen = len(a.requests)
        _, headers, _ = await two.chat(CHAT)  # fast-fails the primary without calling it
        assert headers["x-gate-provider"] == f"q-{tag}" and len(a.requests) == seen
        r = await c2.delete(f"{base}/{pid}", headers=admin())
        assert r.status_code == 204
        r = await c1.get(base, headers=admin())
        assert r.json() == {"data": []}
