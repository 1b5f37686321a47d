"""``/verify`` of a delivery target and ``/test`` of an alert rule send a real, signed
message to an HTTP receiver on 127.0.0.1 (Slack targets get a Slack-formatted body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from starlette.applications import Starlette
from tests.control._app import Gw, start_gw, stop_gw

from tollhouse import control
from tollhouse.events.dispatcher import WebhookDispatcher


@dataclass
class EventsGw(Gw):
    events: WebhookDispatcher | None = None


@dataclass
class Receiver:
    url: str
    seen: list[tuple[str, dict[str, str], bytes]]
    status: list[int]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    seen: list[tuple[str, dict[str, str], bytes]] = []
    status = [200]

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=status[0])

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}", seen, status)
    finally:
        await runner.cleanup()


@pytest.fixture
async def egw(db_url: str) -> AsyncIterator[EventsGw]:
    base = await start_gw(db_url)
    g = EventsGw(
        base.config,
        base.store,
        base.keys,
        base.spend,
        WebhookDispatcher(allow_private=["127.0.0.1"]),
    )
    assert g.events is not None
    await g.events.start()
    try:
        yield g
    finally:
        await g.events.stop()
        await stop_gw(g)


@pytest.fixture
async def eclient(egw: EventsGw) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=control.routes(egw))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c


async def add_target(c: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]) -> str:
    r = await c.post("/v1/workspaces/default/deliveries", json=body, headers=admin)
    assert r.status_code == 201, r.text
    rid: str = r.json()["data"]["id"]
    return rid


async def test_verify_and_rule_test(
    eclient: httpx.AsyncClient, admin: dict[str, str], receiver: Receiver
) -> None:
    hook = await add_target(
        eclient,
        admin,
        {
            "name": "hook",
            "type": "webhook",
            "config": {"url": f"{receiver.url}/hook", "secret": "whsec"},
        },
    )
    slack = await add_target(
        eclient,
        admin,
        {"name": "slack", "type": "slack", "config": {"webhook_url": f"{receiver.url}/slack"}},
    )
    mail = await add_target(
        eclient,
        admin,
        {"name": "mail", "type": "email", "config": {"to": ["a@b.io"], "smtp_host": "h"}},
    )
    r = await eclient.post(f"/v1/workspaces/default/deliveries/{hook}/verify", headers=admin)
    assert r.status_code == 200
    assert r.json()["data"]["delivered"] is True and r.json()["data"]["status"] == 200
    path, headers, body = receiver.seen[-1]
    assert path == "/hook"
    payload = orjson.loads(body)
    assert payload["event"] == "incident.opened" and payload["data"]["test"] is True
    assert payload["teamId"] == "default"
    assert any("signature" in k.lower() for k in headers)

    rule = await eclient.post(
        "/v1/workspaces/default/alert-rules",
        json={
            "name": "High Latency",
            "condition": {"metric": "latency", "threshold_ms": 3000},
            "delivery_targets": [hook, slack, mail],
            "severity": "high",
        },
        headers=admin,
    )
    rid = rule.json()["data"]["id"]
    receiver.seen.clear()
    r = await eclient.post(f"/v1/workspaces/default/alert-rules/{rid}/test", headers=admin)
    assert r.status_code == 200
    results = {x["target"]: x for x in r.json()["data"]["results"]}
    assert results[hook]["delivered"] and results[slack]["delivered"]
    assert results[mail]["delivered"] is False
    by_path = {p: orjson.loads(b) for p, _, b in receiver.seen}
    assert by_path["/hook"]["data"]["rule"] == "High Latency"
    assert "blocks" in by_path["/slack"] and "text" in by_path["/slack"]

    # a failing target is reported, not raised
    receiver.status[0] = 500
    r = await eclient.post(f"/v1/workspaces/default/deliveries/{hook}/verify", headers=admin)
    assert r.json()["data"]["delivered"] is False and r.json()["data"]["status"] == 500


async def test_verify_guards(eclient: httpx.AsyncClient, admin: dict[str, str]) -> None:
    viewer = (
        await eclient.post(
            "/v1/workspaces/default/api-keys", json={"name": "v", "role": "viewer"}, headers=admin
        )
    ).json()["key"]
    target = await add_target(
        eclient, admin, {"name": "ext", "type": "webhook", "config": {"url": "http://10.1.2.3/x"}}
    )
    url = f"/v1/workspaces/default/deliveries/{target}/verify"
    assert (
        await eclient.post(url, headers={"Authorization": f"Bearer {viewer}"})
    ).status_code == 403
    r = await eclient.post(url, headers=admin)  # a private address is refused by the SSRF guard
    assert r.status_code == 200 and r.json()["data"]["delivered"] is False
    assert (
        await eclient.post("/v1/workspaces/default/deliveries/nope/verify", headers=admin)
    ).status_code == 404
