"""Double-check AI audit through the data plane, the audit model served by the mock
provider: blocking mode (451 for high/critical), async mode (never delays), timeouts,
``GET /v1/audits/{id}``, ``audit.flagged``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from tests.support.gateway import (
    GatewayProcess,
    add_key,
    asgi_request,
    bearer,
    running_app,
    write_config,
)
from tests.support.receiver import Receiver

from tollhouse import control
from tollhouse.app import App
from tollhouse.errors import ConfigError
from tollhouse.guard.audit import VERDICT_TTL_S, AuditConfig, parse_risk

ADMIN = "adm_" + "aud1t0" * 6
CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "tell me something"}]}


class Env:
    def __init__(self, app: App, keys: dict[str, str], rx: Receiver) -> None:
        self.app, self.keys, self.rx = app, keys, rx

    async def chat(self, key: str, *extra: tuple[str, str]) -> tuple[int, dict[str, str], Any]:
        headers = [("authorization", f"Bearer {self.keys[key]}"), *extra]
        status, out, raw = await asgi_request(
            self.app, "POST", "/v1/chat/completions", body=orjson.dumps(CHAT), headers=headers
        )
        return status, out, orjson.loads(raw)

    async def audit(self, audit_id: str, key: str | None = None) -> httpx.Response:
        app = Starlette(routes=control.routes(self.app.gw))
        token = ADMIN if key is None else self.keys[key]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as c:
            return await c.get(
                f"/v1/audits/{audit_id}", headers={"Authorization": f"Bearer {token}"}
            )


def audit_config(
    store: str, verdict: str, latency_ms: int = 0, timeout_s: float = 0.5, **extra: Any
) -> dict[str, Any]:
    """A gateway serving ``mock-1`` whose answers the ``judge`` model (a mock answering
    ``verdict``) audits."""
    return {
        "store": store,
        "admin_key": ADMIN,
        "providers": {
            "mock": {"kind": "mock", "options": {"reply": "an answer"}},
            "auditor": {"kind": "mock", "options": {"reply": verdict, "latency_ms": latency_ms}},
        },
        "models": {
            "mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]},
            "judge": {"deployments": [{"provider": "auditor", "model": "judge-1"}]},
        },
        "audit": {"model": "judge", "timeout_s": timeout_s},
        **extra,
    }


@asynccontextmanager
async def make_env(
    tmp_path: Path, rx: Receiver, verdict: str, latency_ms: int = 0
) -> AsyncIterator[Env]:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    webhooks = {
        "endpoints": [{"url": rx.url, "secret": "whsec_dGVzdC1zZWNyZXQtdmFsdWU="}],
        "allow_private": ["127.0.0.0/8"],
    }
    config = audit_config(store, verdict, latency_ms, webhooks=webhooks)
    keys = {
        "plain": await add_key(store, "plain"),
        "async": await add_key(store, "async", audit="async"),
        "blocking": await add_key(store, "blocking", audit="blocking"),
        "strict": await add_key(store, "strict", preset="strict"),
    }
    async with running_app(config) as app:
        yield Env(app, keys, rx)


@pytest.fixture
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def test_blocking_high_risk_is_451_and_flagged(tmp_path: Path, rx: Receiver) -> None:
    async with make_env(tmp_path, rx, '{"risk": "high", "reason": "unsafe"}') as env:
        for key in ("blocking", "strict"):
            status, headers, body = await env.chat(key)
            assert status == 451 and body["error"]["code"] == "audit_blocked"
            assert headers["x-gate-audit-risk"] == "high"
            assert headers["x-gate-audit-passed"] == "false"
            audit_id = headers["x-gate-audit-id"]
            assert audit_id.startswith("daudit_")
            r = await env.audit(audit_id)
            assert r.status_code == 200
            assert r.json()["risk"] == "high" and r.json()["passed"] is False
            assert r.json()["reason"] == "unsafe"
        assert (await env.audit(audit_id, key="plain")).status_code == 404  # not its audit
        assert (await env.audit(audit_id, key="strict")).status_code == 200
        got = await env.rx.wait_for(2)
        events = [orjson.loads(r.body) for r in got]
        assert {e["event"] for e in events} == {"audit.flagged"}
        assert {e["keyName"] for e in events} == {"blocking", "strict"}
        status, headers, _ = await env.chat("plain")  # no audit for this key...
        assert status == 200 and "x-gate-audit-id" not in headers
        status, headers, _ = await env.chat("plain", ("x-gate-audit", "true"))  # ...unless asked
        assert status == 200 and headers["x-gate-audit-id"].startswith("daudit_")


async def test_blocking_low_risk_passes(tmp_path: Path, rx: Receiver) -> None:
    async with make_env(tmp_path, rx, "Risk: LOW - ordinary content") as env:
        status, headers, body = await env.chat("blocking")
        assert status == 200 and body["choices"][0]["message"]["content"] == "an answer"
        assert headers["x-gate-audit-risk"] == "low" and headers["x-gate-audit-passed"] == "true"


async def test_async_mode_never_delays(tmp_path: Path, rx: Receiver) -> None:
    async with make_env(tmp_path, rx, '{"risk": "critical"}', latency_ms=400) as env:
        t = time.perf_counter()
        status, headers, _ = await env.chat("async")
        assert status == 200 and time.perf_counter() - t < 0.3  # the audit takes 400 ms
        audit_id = headers["x-gate-audit-id"]
        assert "x-gate-audit-risk" not in headers
        assert (await env.audit(audit_id)).json()["status"] == "pending"
        await env.app.gw.security.auditor.drain()
        verdict = (await env.audit(audit_id)).json()
        assert verdict["status"] == "done" and verdict["risk"] == "critical"
        got = await env.rx.wait_for(1)
        assert orjson.loads(got[0].body)["data"]["auditId"] == audit_id


async def test_slow_audit_times_out_without_blocking(tmp_path: Path, rx: Receiver) -> None:
    async with make_env(tmp_path, rx, '{"risk": "critical"}', latency_ms=2000) as env:
        t = time.perf_counter()
        status, headers, _ = await env.chat("blocking")
        assert status == 200 and time.perf_counter() - t < 1.5  # timeout_s 0.5
        assert "x-gate-audit-passed" not in headers
        assert (await env.audit(headers["x-gate-audit-id"])).json()["status"] == "error"


async def settled(c: httpx.AsyncClient, url: str, token: str = ADMIN) -> dict[str, Any]:
    """The verdict at ``url`` once it is no longer pending (its writes land in the
    background: polled, bounded)."""
    async with asyncio.timeout(15):
        while True:
            r = await c.get(url, headers=bearer(token))
            assert r.status_code in (200, 404), r.text
            if r.status_code == 200 and r.json()["status"] != "pending":
                body: dict[str, Any] = r.json()
                return body
            await asyncio.sleep(0.05)


async def test_with_redis_counters_every_replica_answers_for_an_audit(
    tmp_path: Path, redis_url: str
) -> None:
    """Two gateway processes sharing a real Redis: an audit run by one is read on the other
    (a blocking one and an async one), for its own key and the admin only, and kept in
    Redis for the verdicts' retention."""
    store = f"sqlite:///{tmp_path / 'a.db'}"
    keys = {
        "plain": await add_key(store, "plain"),
        "async": await add_key(store, "async", audit="async"),
        "blocking": await add_key(store, "blocking", audit="blocking"),
    }
    verdict = '{"risk": "high", "reason": "unsafe"}'
    config = audit_config(store, verdict, latency_ms=200, timeout_s=10, counters=redis_url)
    path = write_config(tmp_path, config)
    redis = Redis.from_url(redis_url)
    with GatewayProcess(path, tmp_path) as one, GatewayProcess(path, tmp_path) as two:
        async with httpx.AsyncClient(timeout=30) as c:
            chat = f"{one.url}/chat/completions"
            r = await c.post(chat, json=CHAT, headers=bearer(keys["blocking"]))
            assert r.status_code == 451 and r.headers["x-gate-audit-risk"] == "high"
            blocked = r.headers["x-gate-audit-id"]
            got = await settled(c, f"{two.url}/audits/{blocked}")
            assert (got["id"], got["status"], got["risk"]) == (blocked, "done", "high")
            assert (got["passed"], got["reason"], got["mode"]) == (False, "unsafe", "blocking")
            assert got == (await c.get(f"{one.url}/audits/{blocked}", headers=bearer(ADMIN))).json()
            mine = await c.get(f"{two.url}/audits/{blocked}", headers=bearer(keys["blocking"]))
            assert mine.json() == got
            other = await c.get(f"{two.url}/audits/{blocked}", headers=bearer(keys["plain"]))
            assert other.status_code == 404  # not its audit
            unknown = await c.get(f"{two.url}/audits/daudit_1_000000", headers=bearer(ADMIN))
            assert unknown.status_code == 404

            r = await c.post(chat, json=CHAT, headers=bearer(keys["async"]))
            assert r.status_code == 200 and "x-gate-audit-risk" not in r.headers
            later = r.headers["x-gate-audit-id"]
            got = await settled(c, f"{two.url}/audits/{later}", keys["async"])
            assert (got["status"], got["risk"], got["mode"]) == ("done", "high", "async")

            for audit_id in (blocked, later):
                assert 0 < await redis.ttl(f"tollhouse:audit:{audit_id}") <= VERDICT_TTL_S
    await redis.aclose()


def test_parse_risk_and_config() -> None:
    assert parse_risk('ok {"risk": "Medium", "reason": "r"} done') == ("medium", "r")
    assert parse_risk("I would say high.") == ("high", None)
    assert parse_risk("no idea") == (None, None)
    assert AuditConfig.parse({"model": "m", "mode": "blocking"}).mode == "blocking"
    for bad in ({"mode": "sometimes"}, {"timeout_s": 0}, {"model": ""}, {"x": 1}, "s"):
        with pytest.raises(ConfigError):
            AuditConfig.parse(bad)
