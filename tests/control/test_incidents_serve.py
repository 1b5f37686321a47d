"""Breaker incidents through a running ``tollhouse serve`` with two workers (PostgreSQL
store, Redis counters): a real upstream on 127.0.0.1 that always fails opens the
deployment's breaker in each worker that sees the failures; the workers share one
incident (the store's unique open key) and the real webhook receiver gets exactly one
``incident.opened``."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.routing._flaky import Flaky, provider
from tests.support.gateway import GatewayProcess, acreate_key, write_config
from tests.support.receiver import Receiver

ADMIN = "adm_" + "incident-admin-secret" * 2
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


async def test_two_workers_share_one_breaker_incident(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    store = postgres_url
    key, _ = await acreate_key(store)
    name = "a" + uuid.uuid4().hex[:8]  # breakers are shared in the session's Redis by id
    with Flaky() as a, Flaky() as b:
        a.always = ("status", 500)
        async with Receiver() as rx:
            cfg = write_config(
                tmp_path,
                {
                    "store": store,
                    "counters": redis_url,
                    "admin_key": ADMIN,
                    "providers": {name: provider(a.url), "b": provider(b.url)},
                    "models": {
                        "chat": {
                            "deployments": [
                                {"provider": name, "model": "m-a", "weight": 1000000},
                                {"provider": "b", "model": "m-b", "weight": 1},
                            ]
                        }
                    },
                    "routing": {
                        "retries": 0,
                        "backoff_base_ms": 1,
                        "breaker": {"failures": 3, "min_requests": 1000, "cooldown_ms": 60000},
                    },
                    "webhooks": {
                        "endpoints": [{"url": rx.url, "secret": "whsec-test"}],
                        "allow_private": ["127.0.0.1/32"],
                    },
                },
            )
            gateway = GatewayProcess(cfg, tmp_path, workers=2)
            await asyncio.to_thread(gateway.start)
            try:
                await drive(gateway, key, rx, f"{name}/m-a")
            finally:
                await asyncio.to_thread(gateway.stop)


async def drive(gateway: GatewayProcess, key: str, rx: Receiver, deployment: str) -> None:
    for _ in range(24):  # fresh connections: spread over both workers
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as c:
            r = await c.post(
                "/v1/chat/completions",
                json=CHAT,
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            )
            assert r.status_code == 200, r.text  # b answers while a fails
    admin = {"Authorization": f"Bearer {ADMIN}"}
    opens = gateway.output().count(f"deployment {deployment} circuit closed -> open")
    assert opens >= 1, gateway.output()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as c:
        detail: dict[str, Any] = {}
        for _ in range(200):  # the workers record in the background
            r = await c.get("/v1/workspaces/default/incidents?source=breaker", headers=admin)
            assert r.status_code == 200, r.text
            listed = r.json()["data"]
            if listed:
                assert len(listed) == 1
                r = await c.get(
                    f"/v1/workspaces/default/incidents/{listed[0]['id']}", headers=admin
                )
                detail = r.json()["data"]
                if len(detail["timeline"]) >= opens:
                    break
            await asyncio.sleep(0.05)
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds == ["opened"] + ["joined"] * (opens - 1), (opens, kinds)
    assert detail["source"] == {"kind": "breaker", "ref": deployment}
    assert detail["route_id"] == "chat" and detail["status"] == "open"
    (hook,) = await rx.wait_for(1)
    await asyncio.sleep(0.3)  # a second one would be on its way by now
    events = [orjson.loads(h.body) for h in rx.requests]
    assert [e["event"] for e in events] == ["incident.opened"]
    assert events[0]["data"]["incident_id"] == detail["id"]
    assert hook.headers["webhook-signature"].startswith("v1,")
