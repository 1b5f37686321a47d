"""Routing lookups over HTTP: /v1/providers, /v1/models/count,
/v1/models/{author}/{slug}/endpoints and /v1/routing/health (the whole app in process,
real upstreams on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.routing._flaky import Flaky, Gate, gateway, provider
from tests.support.gateway import acreate_key, bearer

ADMIN = "adm_" + "routing" * 5


@pytest.fixture
def ups() -> Iterator[tuple[Flaky, Flaky]]:
    with Flaky() as a, Flaky() as b:
        yield a, b


def config(a: Flaky, b: Flaky) -> dict[str, Any]:
    return {
        "admin_key": ADMIN,
        "providers": {"a": provider(a.url), "b": provider(b.url), "claude": {"kind": "anthropic"}},
        "models": {
            "acme/chat": {
                "aliases": ["chat"],
                "deployments": [
                    {"provider": "a", "model": "chat-a", "weight": 1000000, "region": "eu"},
                    {"provider": "b", "model": "chat-b", "weight": 1},
                ],
            },
            "solo": {"deployments": [{"provider": "b", "model": "solo-1"}]},
        },
        "pricing": {"chat-a": {"input_per_mtok": 0.5, "output_per_mtok": 1.5}},
    }


@pytest.fixture
async def env(
    tmp_path: Path, ups: tuple[Flaky, Flaky]
) -> AsyncIterator[tuple[Gate, httpx.AsyncClient]]:
    async with gateway(tmp_path, config(*ups)) as g:
        transport = httpx.ASGITransport(app=g.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            yield g, c


async def test_providers_list(env: tuple[Gate, httpx.AsyncClient]) -> None:
    g, c = env
    r = await c.get("/v1/providers", headers=bearer(g.key))
    assert r.status_code == 200
    data = {p["slug"]: p for p in r.json()["data"]}
    assert set(data) == {"a", "b", "claude"}
    assert data["claude"]["kind"] == "anthropic" and data["claude"]["display_name"] == "Anthropic"
    assert set(data["a"]) >= {"name", "slug", "privacy_policy_url", "terms_of_service_url"}
    r = await c.get("/v1/providers")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_key"


async def test_models_count_follows_the_key(env: tuple[Gate, httpx.AsyncClient]) -> None:
    g, c = env
    r = await c.get("/v1/models/count", headers=bearer(ADMIN))
    assert r.json() == {"data": {"count": 2}}
    store = g.gw.config.store
    limited, _ = await acreate_key(store, "limited", models=["solo"])
    await g.gw.keys.refresh()
    r = await c.get("/v1/models/count", headers=bearer(limited))
    assert r.json() == {"data": {"count": 1}}
    r = await c.get("/v1/models/count?output_modalities=text,embeddings", headers=bearer(g.key))
    assert r.status_code == 200
    r = await c.get("/v1/models/count?output_modalities=smell", headers=bearer(g.key))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


async def test_model_endpoints(env: tuple[Gate, httpx.AsyncClient]) -> None:
    g, c = env
    r = await c.get("/v1/models/acme/chat/endpoints", headers=bearer(g.key))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["id"] == "acme/chat" and data["aliases"] == ["chat"]
    assert data["architecture"]["output_modalities"] == ["text"]
    first, second = data["endpoints"]
    assert first["provider_name"] == "a" and first["tag"] == "a/chat-a"
    assert (
        first["pricing"]["prompt"] == "0.0000005" and first["pricing"]["completion"] == "0.0000015"
    )
    assert first["region"] == "eu" and first["weight"] == 1000000
    assert (
        first["status"] == 0 and first["uptime_last_30m"] is None and first["circuit"] == "closed"
    )
    assert "temperature" in first["supported_parameters"]
    assert second["provider_name"] == "b" and second["pricing"]["prompt"] == "0"
    # provider/model addressing of a plain name
    r = await c.get("/v1/models/b/solo/endpoints", headers=bearer(g.key))
    assert r.status_code == 200 and r.json()["data"]["id"] == "solo"
    for path in ("/v1/models/a/solo/endpoints", "/v1/models/x/nope/endpoints"):
        r = await c.get(path, headers=bearer(g.key))
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    limited, _ = await acreate_key(g.gw.config.store, "limited", models=["solo"])
    await g.gw.keys.refresh()
    r = await c.get("/v1/models/acme/chat/endpoints", headers=bearer(limited))
    assert r.status_code == 404


async def test_routing_health_shows_breakers_error_rates_and_latency(
    env: tuple[Gate, httpx.AsyncClient], ups: tuple[Flaky, Flaky]
) -> None:
    g, c = env
    a, _ = ups
    a.always = ("status", 500)  # a fails 100 %: 3 failures open its breaker
    code, headers, _ = await g.chat(
        {"model": "chat", "messages": [{"role": "user", "content": "x"}]}
    )
    assert code == 200 and headers["x-gate-provider"] == "b"
    r = await c.get("/v1/routing/health", headers=bearer(ADMIN))
    assert r.status_code == 200
    rows = {row["id"]: row for row in r.json()["data"]}
    assert set(rows) == {"a/chat-a", "b/chat-b", "b/solo-1"}
    bad, good = rows["a/chat-a"], rows["b/chat-b"]
    assert bad["state"] == "open" and bad["status"] == "down" and bad["error_rate"] == 1.0
    assert bad["failures"] == 3 and bad["last_error"] == "provider 'a' answered 500"
    assert bad["model"] == "acme/chat" and bad["region"] == "eu"
    assert good["state"] == "closed" and good["successes"] == 1 and good["latency_ms"] > 0
    r = await c.get("/v1/models/acme/chat/endpoints", headers=bearer(g.key))
    first = r.json()["data"]["endpoints"][0]
    assert first["status"] == -2 and first["uptime_last_30m"] == 0.0
    r = await c.get("/v1/routing/health")
    assert r.status_code == 401
