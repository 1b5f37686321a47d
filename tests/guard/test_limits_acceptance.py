"""Issue 4's acceptance tests: gateways sharing one Redis.

* Overspend: a $1.00 budget, requests costing $0.05-0.10, 200 concurrent requests with
  20 % upstream failures and some client disconnects -> recorded spend <= $1.00, no
  reservation left held, and no 429 while real spend was below the limit minus one
  request's worst case.
* Rate: RPM 100 with 1,000 concurrent requests over three gateways -> exactly 100
  admitted (the minute edge is covered with an injected clock in ``test_limits.py``).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.gateway import (
    GatewayProcess,
    acreate_key,
    asgi_request,
    create_key,
    write_config,
)

from tollhouse.app import build_app
from tollhouse.config import parse_config
from tollhouse.counters import Charge
from tollhouse.counters.redis import RedisCounters

USD = 1_000_000
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0, "max_output_tokens": 100}
MAX_TOKENS = 90
# "hi" is 8 prompt tokens for the mock; 8 + 90 tokens at $0.001 each.
WORST_CASE = (8 + MAX_TOKENS) * 1000


@dataclass
class Cluster:
    dir: Path
    store_url: str
    redis_url: str
    gateways: list[GatewayProcess]
    budget_key: str
    budget_hash: str
    rpm_key: str


# Failures are injected on purpose (and breaker state is shared through the session's
# Redis): keep retries quick and the deployment's breaker out of the way; tests/routing
# covers breakers.
NO_BREAKER = {"backoff_base_ms": 5, "breaker": {"failures": 1000, "min_requests": 1000}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Cluster]:
    d = tmp_path_factory.mktemp("cluster")
    store_url = f"sqlite:///{d / 'gw.db'}"
    config = {
        "store": store_url,
        "counters": redis_url,
        "fail_mode": "closed",
        "providers": {"mock": {"kind": "mock"}},
        "models": {"pricey": {"deployments": [{"provider": "mock", "model": "pricey"}]}},
        "pricing": {"pricey": PRICE},
        "limits": {"max_wait_seconds": 30},
        "routing": NO_BREAKER,
    }
    path = write_config(d, config)
    gateways = [GatewayProcess(path, d) for _ in range(3)]
    # The store is created (and migrated) by the first gateway; keys go in before the rest.
    gateways[0].start(timeout=60)
    budget_key, budget = create_key(store_url, "budget", limit_micros=USD)
    rpm_key, _ = create_key(store_url, "rpm", rpm=100)
    try:
        for g in gateways[1:]:
            g.start(timeout=60)
        time.sleep(1.0)  # every key cache has polled the new keys
        yield Cluster(d, store_url, redis_url, gateways, budget_key, budget.hash, rpm_key)
    finally:
        for g in gateways:
            g.stop()


def _body(rng: random.Random, kind: str) -> dict[str, Any]:
    words = rng.randint(42, 85)
    mock: dict[str, Any] = {"reply": " ".join(["word"] * words)}
    if kind == "fail":
        mock = {"error_status": 500}
    elif kind == "gone":
        mock["latency_ms"] = 1500
    return {
        "model": "pricey",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": MAX_TOKENS,
        "mock": mock,
    }


async def _send(
    client: httpx.AsyncClient, url: str, key: str, body: dict[str, Any], timeout: float
) -> tuple[int, str]:
    try:
        r = await client.post(
            f"{url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )
    except httpx.TimeoutException:
        return 0, "client_gone"
    code = r.json()["error"]["code"] if r.status_code != 200 else "ok"
    return r.status_code, code


def test_overspend_is_impossible_across_three_processes(cluster: Cluster) -> None:
    rng = random.Random(4)
    kinds = ["fail"] * 40 + ["gone"] * 16 + ["ok"] * 144
    rng.shuffle(kinds)

    async def run() -> list[tuple[int, str]]:
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits) as client:
            return await asyncio.gather(
                *(
                    _send(
                        client,
                        cluster.gateways[i % 3].url,
                        cluster.budget_key,
                        _body(rng, kind),
                        0.3 if kind == "gone" else 50.0,
                    )
                    for i, kind in enumerate(kinds)
                )
            )

    results = asyncio.run(run())
    outcomes = Counter(code for _, code in results)
    assert set(outcomes) <= {"ok", "provider_error", "budget_exceeded", "client_gone"}, outcomes
    assert outcomes["ok"] >= 10, outcomes  # $1.00 buys at least 10 answers of <= $0.093
    assert outcomes["budget_exceeded"] > 0, outcomes  # the budget was really reached

    time.sleep(1.0)  # disconnected requests finish settling and recording
    for g in cluster.gateways:
        g.stop()  # flush every spend writer
    path = cluster.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        (spent,) = db.execute(
            "SELECT COALESCE(SUM(cost_micros), 0) FROM spend WHERE key_hash = ?",
            (cluster.budget_hash,),
        ).fetchone()
    assert spent <= USD, f"overspent: ${spent / USD:.6f}"
    # No 429 while real spend was below the limit minus one request's worst case.
    assert spent > USD - WORST_CASE, f"refused early at ${spent / USD:.6f}"

    async def level() -> tuple[int, int]:
        counters = RedisCounters(cluster.redis_url)
        try:
            charge = Charge(f"b:key:{cluster.budget_hash}:cost:all:all", 0, USD)
            (lv,) = await counters.levels([charge], now_ms=int(time.time() * 1000))
            return lv.used, lv.held
        finally:
            await counters.close()

    used, held = asyncio.run(level())
    assert held == 0, "a reservation leaked"
    assert used == spent  # the counters and the durable record agree to the micro-dollar


async def test_rpm_100_admits_exactly_100_of_1000(tmp_path: Path, redis_url: str) -> None:
    """Three gateways (in process, to keep the 1,000 requests fast on a small machine;
    the processes above show the same counters across processes) share one Redis."""
    store_url = f"sqlite:///{tmp_path / 'rpm.db'}"
    config = parse_config(
        {
            "store": store_url,
            "counters": redis_url,
            "providers": {"mock": {"kind": "mock"}},
            "models": {"pricey": {"deployments": [{"provider": "mock", "model": "pricey"}]}},
            "pricing": {"pricey": PRICE},
            "routing": NO_BREAKER,
        }
    )
    apps = [build_app(config) for _ in range(3)]
    for app in apps:
        await app.gw.start()
    try:
        raw, _ = await acreate_key(store_url, "rpm", rpm=100)
        for app in apps:
            await app.gw.keys.refresh(force=True)
        body = orjson.dumps(
            {"model": "pricey", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        )
        headers = [("authorization", f"Bearer {raw}")]
        started = time.monotonic()
        results = await asyncio.gather(
            *(
                asgi_request(
                    apps[i % 3], "POST", "/v1/chat/completions", body=body, headers=headers
                )
                for i in range(1000)
            )
        )
        assert time.monotonic() - started < 55  # inside one minute: one sliding window
        outcomes = Counter(
            "ok" if status == 200 else orjson.loads(out)["error"]["code"]
            for status, _, out in results
        )
        assert outcomes == {"ok": 100, "rate_limited": 900}, outcomes
        limited = [h for status, h, _ in results if status == 429]
        assert all(h["x-ratelimit-remaining-requests"] == "0" for h in limited)
        assert all(0 < int(h["retry-after"]) <= 60 for h in limited)
    finally:
        for app in apps:
            await app.gw.stop()
