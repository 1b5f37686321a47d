"""The limits stage inside the gateway app (in process, mock provider, real store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.support.gateway import acreate_key, asgi_request, running_app
from tests.support.receiver import Receiver
from tests.support.redis import RedisServer

from tollhouse.app import App
from tollhouse.events.signing import verify
from tollhouse.guard import guardrails
from tollhouse.guard.budgets import Budget
from tollhouse.store.base import KeyRecord

PRICING = {
    "mock-1": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0, "max_output_tokens": 100},
    "mock-big": {"input_per_mtok": 5000.0, "output_per_mtok": 5000.0},
}


def config(tmp: Path, **extra: Any) -> dict[str, Any]:
    return {
        "store": f"sqlite:///{tmp / 'gw.db'}",
        "providers": {"mock": {"kind": "mock", "options": {"reply": "one two three four"}}},
        "models": {
            "mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]},
            "mock-big": {"deployments": [{"provider": "mock", "model": "mock-big"}]},
        },
        "pricing": PRICING,
        **extra,
    }


async def new_key(app: App, **kw: Any) -> tuple[str, KeyRecord]:
    raw, record = await acreate_key(app.gw.config.store, "t", **kw)
    await app.gw.keys.refresh(force=True)
    return raw, record


async def chat(
    app: App, raw: str, model: str = "mock-1", **body: Any
) -> tuple[int, dict[str, str], Any]:
    payload = {"model": model, "messages": [{"role": "user", "content": "hello"}], **body}
    status, headers, out = await asgi_request(
        app,
        "POST",
        "/v1/chat/completions",
        body=orjson.dumps(payload),
        headers=[("authorization", f"Bearer {raw}"), ("content-type", "application/json")],
    )
    return status, headers, out if body.get("stream") else orjson.loads(out)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with running_app(config(tmp_path, limits={"max_wait_seconds": 0})) as a:
        yield a


async def key_level(app: App, record: KeyRecord) -> tuple[int, int]:
    assert record.limit_micros is not None
    charge, _ = Budget("key", record.hash, record.limit_micros, record.limit_reset).charge(
        0, int(time.time() * 1000)
    )
    (level,) = await app.gw.limits.counters.levels([charge], now_ms=int(time.time() * 1000))
    return level.used, level.held


async def test_headers_rpm_and_budget_errors(app: App) -> None:
    raw, record = await new_key(app, rpm=2, tpm=100_000, limit_micros=100_000, limit_reset="daily")
    status, headers, body = await chat(app, raw, max_tokens=50)
    assert status == 200, body
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    cost = round(float(headers["x-gate-cost"]) * 1_000_000)
    assert await key_level(app, record) == (cost, 0)  # settled to the true cost
    # Worst case now: (prompt + the 100-token ceiling) x $0.001 > what is left of $0.10.
    status, headers, body = await chat(app, raw)
    assert status == 429, body
    assert body["error"]["code"] == "budget_exceeded"
    assert int(headers["retry-after"]) > 0
    await chat(app, raw, max_tokens=5)
    status, headers, body = await chat(app, raw, max_tokens=5)
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 0 < int(headers["retry-after"]) <= 60


async def test_upstream_failure_and_stream_settle(app: App) -> None:
    raw, record = await new_key(app, limit_micros=10_000_000)
    status, _, body = await chat(app, raw, mock={"error_status": 500})
    assert status == 502, body
    assert await key_level(app, record) == (0, 0)  # released: nothing was spent
    status, headers, stream = await chat(app, raw, stream=True)
    assert status == 200 and b"[DONE]" in stream
    used, held = await key_level(app, record)
    assert used > 0 and held == 0
    # A client that goes away mid-call: the prompt was sent, so the prompt is charged.
    payload = orjson.dumps(
        {
            "model": "mock-1",
            "messages": [{"role": "user", "content": "x"}],
            "mock": {"latency_ms": 2000},
        }
    )
    await asgi_request(
        app,
        "POST",
        "/v1/chat/completions",
        body=payload,
        headers=[("authorization", f"Bearer {raw}")],
        disconnect_after=0.1,
    )
    used2, held2 = await key_level(app, record)
    assert used2 > used and held2 == 0


async def test_guardrail_route_and_throttle(app: App) -> None:
    raw, record = await new_key(app, team="ds")
    repo = app.gw.guardrails.repo
    route = guardrails.create(
        {
            "name": "big tokens",
            "team": "ds",
            "models": ["mock-big"],
            "limit_tokens": 1,
            "reset_interval": "daily",
            "action": "route",
            "route_target": "mock-1",
        }
    )
    throttle = guardrails.create(
        {"name": "slow", "agent_id": "bot", "limit_requests": 1, "action": "throttle"}
    )
    await repo.create(route)
    await repo.create(throttle)
    await app.gw.guardrails.refresh()
    status, headers, body = await chat(app, raw, model="mock-big")
    assert status == 200, body
    assert body["model"] == "mock-1"
    assert headers["x-gate-rerouted-from"] == "mock-big"
    assert headers["x-gate-guardrail-id"] == route.id

    hdr = [("authorization", f"Bearer {raw}"), ("x-gate-agent-id", "bot")]
    req = orjson.dumps({"model": "mock-1", "messages": [{"role": "user", "content": "x"}]})
    status, _, _ = await asgi_request(app, "POST", "/v1/chat/completions", body=req, headers=hdr)
    assert status == 200
    status, headers, out = await asgi_request(
        app, "POST", "/v1/chat/completions", body=req, headers=hdr
    )
    assert status == 429 and orjson.loads(out)["error"]["code"] == "rate_limited"
    assert "throttled by guardrail 'slow'" in orjson.loads(out)["error"]["message"]
    assert record.team == "ds"


async def test_guardrail_allowed_models_is_403(app: App) -> None:
    raw, record = await new_key(app)
    g = guardrails.create({"name": "only mock-1", "allowed_models": ["mock-1"]})
    await app.gw.guardrails.repo.create(g)
    await app.gw.guardrails.repo.assign(g.id, "key", [record.hash])
    await app.gw.guardrails.refresh()
    assert (await chat(app, raw))[0] == 200
    status, _, body = await chat(app, raw, model="mock-big")
    assert (status, body["error"]["code"]) == (403, "model_not_allowed")


async def test_embeddings_reserve_and_settle(app: App) -> None:
    raw, record = await new_key(app, limit_micros=1_000_000)
    status, headers, out = await asgi_request(
        app,
        "POST",
        "/v1/embeddings",
        body=orjson.dumps({"model": "mock-1", "input": "hello there"}),
        headers=[("authorization", f"Bearer {raw}")],
    )
    assert status == 200, out
    used, held = await key_level(app, record)
    assert used == round(float(headers["x-gate-cost"]) * 1_000_000) and held == 0


async def readyz(app: App) -> dict[str, Any]:
    _, _, out = await asgi_request(app, "GET", "/readyz")
    data: dict[str, Any] = orjson.loads(out)
    return data


async def test_fail_closed_and_recovery(tmp_path: Path, redis_server: RedisServer) -> None:
    async with running_app(config(tmp_path, counters=redis_server.url, fail_mode="closed")) as app:
        raw, _ = await new_key(app, limit_micros=5_000_000)
        free, _ = await new_key(app)
        assert (await chat(app, raw))[0] == 200
        assert (await readyz(app))["counters"]["mode"] == "normal"
        redis_server.stop()
        status, _, body = await chat(app, raw)
        assert (status, body["error"]["code"]) == (503, "unavailable")
        assert (await chat(app, free))[0] == 200  # no ceiling: no counters needed
        ready = await readyz(app)
        assert ready["status"] == "ok"
        assert ready["counters"] == {
            "backend": "redis",
            "ok": False,
            "fail_mode": "closed",
            "mode": "fail_closed",
        }
        redis_server.start()
        deadline = time.monotonic() + 10
        while app.gw.limits.degraded:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert (await chat(app, raw))[0] == 200


async def test_fail_open_admits_and_says_so(tmp_path: Path, redis_server: RedisServer) -> None:
    async with running_app(config(tmp_path, counters=redis_server.url, fail_mode="open")) as app:
        raw, _ = await new_key(app, rpm=1)
        redis_server.stop()
        assert (await chat(app, raw))[0] == 200  # admitted by the local limiter
        assert (await chat(app, raw))[0] == 429  # which still enforces, per process
        assert (await readyz(app))["counters"]["mode"] == "fail_open"
        assert app.gw.limits.stats["fail_open"] == 2


async def test_restart_with_memory_counters_remembers_spend(tmp_path: Path) -> None:
    cfg = config(tmp_path, limits={"max_wait_seconds": 0})
    async with running_app(cfg) as app:
        raw, record = await new_key(app, limit_micros=60_000)
        status, headers, _ = await chat(app, raw, max_tokens=10)
        assert status == 200
        spent = round(float(headers["x-gate-cost"]) * 1_000_000)
    # stopped: the spend row is flushed
    async with running_app(cfg) as app:
        assert await key_level(app, record) == (spent, 0)
        # What is left no longer fits a worst case that fitted before the restart.
        status, _, body = await chat(app, raw, max_tokens=50)
        assert (status, body["error"]["code"]) == (429, "budget_exceeded")


async def test_anthropic_messages_and_responses_are_budgeted(app: App) -> None:
    raw, record = await new_key(app, limit_micros=150_000)
    hdr = [("x-api-key", raw), ("content-type", "application/json")]
    msg = {
        "model": "mock-1",
        "max_tokens": 20,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello"}],
    }
    status, _, out = await asgi_request(
        app, "POST", "/v1/messages", body=orjson.dumps(msg), headers=hdr
    )
    assert status == 200, out
    used, held = await key_level(app, record)
    assert used > 0 and held == 0
    resp = {
        "model": "mock-1",
        "input": [{"role": "user", "content": "hi"}],
        "max_output_tokens": 10,
    }
    auth = [("authorization", f"Bearer {raw}")]
    status, _, out = await asgi_request(
        app, "POST", "/v1/responses", body=orjson.dumps(resp), headers=auth
    )
    assert status == 200, out
    used2, held2 = await key_level(app, record)
    assert used2 > used and held2 == 0
    msg["max_tokens"] = 500  # worst case $0.5: beyond what is left
    status, headers, out = await asgi_request(
        app, "POST", "/v1/messages", body=orjson.dumps(msg), headers=hdr
    )
    assert status == 429, out
    assert b"budget" in out and "retry-after" not in headers  # lifetime budget


async def test_budget_alerts_are_delivered_signed_once(tmp_path: Path) -> None:
    async with Receiver() as rx:
        webhooks = {
            "endpoints": [{"url": rx.url, "secret": "whsec_" + "k" * 32}],
            "allow_private": ["127.0.0.1"],
        }
        async with running_app(
            config(tmp_path, webhooks=webhooks, limits={"max_wait_seconds": 0})
        ) as app:
            raw, record = await new_key(app, limit_micros=40_000, limit_reset="daily")
            statuses = [(await chat(app, raw, max_tokens=5))[0] for _ in range(6)]
            assert statuses[:2] == [200, 200] and 429 in statuses
            got = await rx.wait_for(2)
            await asyncio.sleep(0.3)  # nothing more arrives: each fired once
            assert len(rx.requests) == 2
            events = [orjson.loads(r.body) for r in got]
            assert [e["event"] for e in events] == ["budget.alert", "budget.exceeded"]
            assert events[0]["keyName"] == "t"
            assert events[0]["data"]["scope"] == f"key:{record.hash}"
            assert events[0]["data"]["period"] == "daily"
            for r in got:
                assert r.headers["webhook-id"].startswith("evt_")
                verify("whsec_" + "k" * 32, r.headers, r.body)


async def test_restart_remembers_team_spend(tmp_path: Path) -> None:
    limits = {"max_wait_seconds": 0, "teams": {"ds": {"budget_usd": 0.05, "period": "monthly"}}}
    cfg = config(tmp_path, limits=limits)
    async with running_app(cfg) as app:
        raw, _ = await new_key(app, team="ds")
        status, headers, _ = await chat(app, raw, max_tokens=10)
        assert status == 200
    async with running_app(cfg) as app:
        status, _, body = await chat(app, raw, max_tokens=35)  # fits only a fresh budget
        assert (status, body["error"]["code"]) == (429, "budget_exceeded")
        assert "team:ds" in body["error"]["message"]


async def test_worst_case_covers_fallback_models(tmp_path: Path) -> None:
    cfg = config(tmp_path, limits={"max_wait_seconds": 0})
    cfg["models"]["mock-1"]["fallbacks"] = ["mock-big"]
    async with running_app(cfg) as app:
        # mock-big costs 5x: its worst case ($0.005/token x (8 + 10)) is what is reserved.
        raw, _ = await new_key(app, limit_micros=80_000)
        status, _, body = await chat(app, raw, max_tokens=10)
        assert (status, body["error"]["code"]) == (429, "budget_exceeded")
        raw2, _ = await new_key(app, limit_micros=95_000)
        assert (await chat(app, raw2, max_tokens=10))[0] == 200


async def test_body_fallbacks_priced_and_filtered_by_guardrails(app: App) -> None:
    from tollhouse.guard.limits import Admission
    from tollhouse.proxy.budget import allowed_targets
    from tollhouse.proxy.pipeline import Exchange
    from tollhouse.routing.registry import Target

    raw, _ = await new_key(app, limit_micros=80_000)
    status, _, body = await chat(app, raw, max_tokens=10, models=["mock-big"])
    assert (status, body["error"]["code"]) == (429, "budget_exceeded")
    assert (await chat(app, raw, max_tokens=10))[0] == 200

    g = guardrails.create({"name": "cheap only", "allowed_models": ["mock-1"]})
    ex = Exchange()
    ex.admission = Admission(rails=(g,))
    targets = [Target("mock-1", "mock", "mock-1"), Target("mock-big", "mock", "mock-big")]
    assert [t.model for t in allowed_targets(ex, targets)] == ["mock-1"]
    ex.admission = None
    assert allowed_targets(ex, targets) == targets
