"""The control plane over real HTTP: ``tollhouse serve`` with two workers on PostgreSQL.

One walk through a key's life: created with the admin key, working on every worker, its
spend visible in ``/v1/generation``, ``/v1/key``, ``/v1/activity`` and ``/v1/keys``,
revoked everywhere within a second, and its spend still there after a restart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from tests.support.gateway import GatewayProcess, write_config

ADMIN = "adm_" + "e2e-admin-secret" * 2
CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hello there"}]}


def config(tmp_path: Path, store: str, counters: str) -> Path:
    return write_config(
        tmp_path,
        {
            "store": store,
            "counters": counters,
            "admin_key": "env:TOLLHOUSE_E2E_ADMIN",
            "providers": {"mock": {"kind": "mock"}},
            "models": {"mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]}},
            "pricing": {"mock-1": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        },
    )


def statuses(base: str, key: str, n: int = 12, costs: list[float] | None = None) -> list[int]:
    """Chat statuses over ``n`` fresh connections (spread over the workers)."""
    out = []
    for _ in range(n):
        with httpx.Client(base_url=base, timeout=10) as c:
            r = c.post(
                "/v1/chat/completions",
                json=CHAT,
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            )
            out.append(r.status_code)
            if costs is not None and r.status_code == 200:
                costs.append(float(r.headers["x-gate-cost"]))
    return out


def eventually(fn: Any, timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_key_lifecycle_over_http(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    cfg = config(tmp_path, postgres_url, redis_url)
    env = {"TOLLHOUSE_E2E_ADMIN": ADMIN}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with GatewayProcess(cfg, tmp_path, workers=2, env=env) as gw:
        c = httpx.Client(base_url=gw.base_url, timeout=10)

        wrong = c.get("/v1/keys", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_key"
        bad = c.post("/v1/keys", json={"limit": -1}, headers=admin)
        assert bad.status_code == 422
        assert set(bad.json()["error"]["fields"]) == {"name", "limit"}

        made = c.post(
            "/v1/keys", json={"name": "e2e", "limit": 10, "limit_reset": "daily"}, headers=admin
        )
        assert made.status_code == 201, made.text
        raw, key_hash = made.json()["key"], made.json()["data"]["hash"]
        user = {"Authorization": f"Bearer {raw}"}

        # Created through one worker, it works on all of them within a second.
        time.sleep(1.0)
        probe_costs: list[float] = []
        assert statuses(gw.base_url, raw, costs=probe_costs) == [200] * 12

        costs: dict[str, float] = {}
        for _ in range(3):
            r = c.post("/v1/chat/completions", json=CHAT, headers=user)
            assert r.status_code == 200
            costs[r.headers["x-gate-request-id"]] = float(r.headers["x-gate-cost"])
        for gen_id, cost in costs.items():
            got = eventually(
                lambda gid=gen_id: (
                    c.get("/v1/generation", params={"id": gid}, headers=user).json().get("data")
                )
            )
            assert got and got["id"] == gen_id and got["model"] == "mock-1"
            assert abs(got["total_cost"] - cost) < 1e-9

        def requests() -> int:
            rows = c.get("/v1/activity", headers=user).json()["data"]
            return sum(a["requests"] for a in rows if a["model"] == "mock-1")

        # Both workers' writers flush within their interval: all 15 rows arrive.
        assert eventually(lambda: requests() == 15)
        total = sum(costs.values()) + sum(probe_costs)
        me = c.get("/v1/key", headers=user).json()["data"]
        assert abs(me["usage"] - total) < 1e-6
        assert me["limit"] == 10.0 and me["limit_reset"] == "daily"
        assert abs(me["limit_remaining"] - (10.0 - me["usage_daily"])) < 1e-6
        listed = c.get(f"/v1/keys/{key_hash}", headers=admin).json()["data"]
        assert listed["usage"] == me["usage"]
        spent = me["usage"]

        assert c.patch(f"/v1/keys/{key_hash}", json={"disabled": True}, headers=admin).is_success
        time.sleep(1.0)
        assert statuses(gw.base_url, raw) == [401] * 12
        c.close()

    # Spend rows and the revocation survive a restart.
    with GatewayProcess(cfg, tmp_path, workers=2, env=env) as gw:
        c = httpx.Client(base_url=gw.base_url, timeout=10)
        data = c.get(f"/v1/keys/{key_hash}", headers=admin).json()["data"]
        assert data["disabled"] is True and data["usage"] == spent
        assert c.post("/v1/chat/completions", json=CHAT, headers=user).status_code == 401
        assert c.delete(f"/v1/keys/{key_hash}", headers=admin).json() == {"deleted": True}
        assert c.get(f"/v1/keys/{key_hash}", headers=admin).status_code == 404
        c.close()
