"""Metrics of a real ``tollhouse serve`` with two Granian workers behind one /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from tests.support.gateway import Stack
from tests.support.metrics_stack import two_worker_stack
from tests.support.prom import Samples, parse, sample


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    with two_worker_stack(tmp_path_factory.mktemp("metrics-gw"), redis_url) as s:
        yield s


def _chat(
    stack: Stack, model: str, *, stream: bool = False, key: str | None = None
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "count the sheep"}]}
    if stream:
        body["stream"] = True
    # a fresh connection per request so both workers get traffic
    return httpx.post(
        f"{stack.url}/chat/completions",
        content=orjson.dumps(body),
        headers=stack.headers(key),
        timeout=10,
    )


def _scrape(stack: Stack) -> Samples:
    resp = httpx.get(f"{stack.gateway.base_url}/metrics", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(resp.text)


def _settled(stack: Stack, metric: str, want: float, **labels: str) -> Samples:
    deadline = time.monotonic() + 15
    while True:
        s = _scrape(stack)
        if s.get((metric, frozenset(labels.items()))) == want or time.monotonic() > deadline:
            return s
        time.sleep(0.1)


def test_requests_of_both_workers_in_one_scrape(stack: Stack) -> None:
    cost = 0
    for _ in range(20):
        resp = _chat(stack, "gpt-4o-mini")
        assert resp.status_code == 200
        cost += round(float(resp.headers["x-gate-cost"]) * 1_000_000)
    for _ in range(5):
        resp = _chat(stack, "mock-1", stream=True)
        assert resp.status_code == 200 and resp.text.rstrip().endswith("data: [DONE]")
    for _ in range(3):
        assert _chat(stack, "gpt-4o-mini", key="gk_wrong").status_code == 401
    for _ in range(2):
        assert _chat(stack, "no-such-model").status_code == 404

    ok = {"model": "gpt-4o-mini", "provider": "up"}
    s = _settled(stack, "tollhouse_requests_total", 20, **ok, status="200", code="")
    assert sample(s, "tollhouse_requests_total", **ok, status="200", code="") == 20
    mock = {"model": "mock-1", "provider": "mock"}
    s = _settled(stack, "tollhouse_requests_total", 5, **mock, status="200", code="")
    assert sample(s, "tollhouse_requests_total", **mock, status="200", code="") == 5
    s = _settled(
        stack,
        "tollhouse_requests_total",
        3,
        model="",
        provider="",
        status="401",
        code="invalid_key",
    )
    assert (
        sample(
            s, "tollhouse_requests_total", model="", provider="", status="401", code="invalid_key"
        )
        == 3
    )
    s = _settled(
        stack,
        "tollhouse_requests_total",
        2,
        model="",
        provider="",
        status="404",
        code="model_not_found",
    )
    assert (
        sample(
            s,
            "tollhouse_requests_total",
            model="",
            provider="",
            status="404",
            code="model_not_found",
        )
        == 2
    )

    assert sample(s, "tollhouse_workers") == 2
    assert sample(s, "tollhouse_webhook_queue_depth") == 0  # the gateway's dispatcher
    assert sample(s, "tollhouse_keys_cached") >= 1
    assert sample(s, "tollhouse_breaker_state", deployment="up/gpt-4o-mini") == 0
    assert sample(s, "tollhouse_backend_up", backend="store") == 1  # set by /readyz
    assert sample(s, "tollhouse_backend_up", backend="counters") == 1
    # every metered request (authenticated and routed) becomes a spend row
    s = _settled(stack, "tollhouse_spend_rows_total", 25, outcome="written")
    assert sample(s, "tollhouse_spend_rows_total", outcome="written") == 25
    assert sample(s, "tollhouse_cost_usd_total", **ok) == pytest.approx(cost / 1e6, abs=1e-12)
    assert sample(s, "tollhouse_tokens_total", **ok, direction="input") > 0
    assert sample(s, "tollhouse_tokens_total", **mock, direction="output") > 0
    assert sample(s, "tollhouse_upstream_duration_seconds_count", **ok) == 20
    assert sample(s, "tollhouse_overhead_seconds_count", **ok) == 20
    assert sample(s, "tollhouse_ttft_seconds_count", **mock) == 5
    assert ("tollhouse_ttft_seconds_count", frozenset(ok.items())) not in s
    # Pipeline stages: each request counts in the stages it got through (the 401s end
    # at auth, the 404s at parse); every one of them settles.
    stages = {
        "auth": 27,
        "parse": 25,
        "security": 25,
        "limits": 25,
        "route": 25,
        "upstream": 25,
        "respond": 20,
        "relay": 5,
        "settle": 30,
    }
    for stage, n in stages.items():
        assert sample(s, "tollhouse_stage_duration_seconds_count", stage=stage) == n, stage
        assert sample(s, "tollhouse_stage_duration_seconds_sum", stage=stage) > 0, stage
    for _ in range(4):  # any worker answers the scrape with the same totals
        again = _scrape(stack)
        assert sample(again, "tollhouse_requests_total", **ok, status="200", code="") == 20


def test_serve_removes_its_metrics_directory(tmp_path: Path, redis_url: str) -> None:
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm on this machine (the directory goes to the temp dir)")
    with two_worker_stack(tmp_path, redis_url) as s:
        assert s.gateway.proc is not None
        shared = Path(f"/dev/shm/tollhouse-metrics-{s.gateway.proc.pid}")
        assert _chat(s, "mock-1").status_code == 200
        deadline = time.monotonic() + 10
        while not list(shared.glob("w-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(shared.glob("w-*.json")), "workers write their snapshots there"
        # A generous stop: under a loaded machine the default 15 s can end in SIGKILL,
        # which skips serve's cleanup and would fail this test for the wrong reason.
        proc = s.gateway.proc
        s.gateway.stop(timeout=60)
        assert proc.returncode is not None and proc.returncode >= 0, "serve exited by itself"
    assert not shared.exists()
