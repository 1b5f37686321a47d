"""Aggregation across real worker processes: plain subprocesses and Granian workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.prom import parse, sample
from tests.support.servers import granian

from tollhouse._metrics_families import render
from tollhouse._metrics_files import ENV_DIR, collect, prepare_directory, remove_directory
from tollhouse.metrics import Metrics

_WORKER = textwrap.dedent(
    """
    import sys
    from tollhouse.metrics import Metrics

    directory, requests, depth, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    m = Metrics(directory=directory)

    class Q:
        def stats(self):
            return {"queue_depth": depth, "delivered": requests}

    m.track_webhooks(Q())
    for _ in range(requests):
        m.observe_request("mock-1", "mock", 200, total_s=0.01, upstream_s=0.008, cost_micros=3)
        m.flush()
    m.set_breaker_state("mock/mock-1", "open" if mode == "wait" else "closed")
    m.flush()
    print("ready", flush=True)
    if mode == "wait":
        sys.stdin.readline()
    """
)


def _start(directory: Path, requests: int, depth: int) -> subprocess.Popen[str]:
    """A worker that counts, flushes and stays alive until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(directory), str(requests), str(depth), "wait"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _run(directory: Path, requests: int, depth: int) -> None:
    """A worker that counts, flushes and exits."""
    args = [sys.executable, "-c", _WORKER, str(directory), str(requests), str(depth), "exit"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "ready"


def _scrape(directory: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse(render(collect(directory)))


REQ = {"model": "mock-1", "provider": "mock", "status": "200", "code": ""}


def test_workers_sum_and_restarts_do_not_reset(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    alive = _start(d, 3, 5)
    try:
        _run(d, 2, 2)
        s = _scrape(d)
        assert sample(s, "tollhouse_requests_total", **REQ) == 5
        assert sample(s, "tollhouse_cost_usd_total", model="mock-1", provider="mock") == 15e-6
        assert sample(s, "tollhouse_webhook_deliveries_total", outcome="delivered") == 5
        assert sample(s, "tollhouse_webhook_queue_depth") == 5  # the dead worker's 2 are gone
        assert sample(s, "tollhouse_workers") == 1
        assert sample(s, "tollhouse_breaker_state", deployment="mock/mock-1") == 2
        # the dead worker was folded into the archive and its files removed
        assert len(list(d.glob("w-*.json"))) == 1 and (d / "archive.json").exists()

        _run(d, 4, 0)  # a restarted worker counts on top
        s = _scrape(d)
        assert sample(s, "tollhouse_requests_total", **REQ) == 9
        assert (
            sample(s, "tollhouse_request_duration_seconds_count", model="mock-1", provider="mock")
            == 9
        )
    finally:
        alive.kill()
        alive.communicate(timeout=30)
    s = _scrape(d)  # killed without a goodbye: its last flush still counts
    assert sample(s, "tollhouse_requests_total", **REQ) == 9
    assert ("tollhouse_workers", frozenset()) not in s
    assert ("tollhouse_webhook_queue_depth", frozenset()) not in s
    assert list(d.glob("w-*.json")) == []


def test_totals_never_go_backwards_while_workers_come_and_go(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(d), "40", "0", "exit"],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(4)
    ]
    last = 0.0
    while any(p.poll() is None for p in procs):
        totals = collect(d)
        now = totals.counters.get("tollhouse_requests_total", {}).get(
            ("mock-1", "mock", "200", ""), 0
        )
        assert now >= last
        last = now
    for p in procs:
        assert p.wait(timeout=30) == 0
    s = _scrape(d)
    assert sample(s, "tollhouse_requests_total", **REQ) == 160


# -- Granian with several workers ----------------------------------------------------------


@pytest.fixture(scope="module")
def granian_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``tests.support.metrics_app`` on Granian with 2 workers; yields (base URL, dir)."""
    d = tmp_path_factory.mktemp("metrics") / "shared"
    saved = os.environ.get(ENV_DIR)
    prepare_directory(d)
    env = dict(os.environ)
    if saved is None:
        del os.environ[ENV_DIR]
    else:
        os.environ[ENV_DIR] = saved
    with granian("tests.support.metrics_app:app", workers=2, env=env, ready="/pid") as base:
        yield base, d


def _requests_total(base: str) -> float:
    s = parse(httpx.get(f"{base}/metrics", timeout=5).text)
    return s.get(("tollhouse_requests_total", frozenset(REQ.items())), 0.0)


def _settle(base: str, want: float, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    seen = _requests_total(base)
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = _requests_total(base)
    return seen


def test_granian_workers_report_as_one(granian_app: tuple[str, Path]) -> None:
    base, _ = granian_app
    pids: set[str] = set()
    # fresh connections so the kernel spreads them over both workers
    for _ in range(60):
        pids.add(httpx.get(f"{base}/hit", timeout=5).text)
    assert len(pids) == 2, "both workers served requests"
    assert _settle(base, 60) == 60
    for _ in range(5):  # whichever worker answers the scrape, the totals are the same
        assert _requests_total(base) == 60
    s = parse(httpx.get(f"{base}/metrics", timeout=5).text)
    assert sample(s, "tollhouse_workers") == 2
    assert (
        sample(s, "tollhouse_tokens_total", model="mock-1", provider="mock", direction="input")
        == 600
    )


def test_granian_worker_killed_and_respawned(granian_app: tuple[str, Path]) -> None:
    base, _ = granian_app
    before = _requests_total(base)
    assert _settle(base, before) == before
    victim = int(httpx.get(f"{base}/hit", timeout=5).text)
    time.sleep(0.5)  # the victim flushes every 0.1 s
    os.kill(victim, signal.SIGKILL)
    served = 1
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:
        try:
            pid = int(httpx.get(f"{base}/hit", timeout=5).text)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        served += 1
        pids.add(pid)
    assert victim not in pids and len(pids) == 2, "Granian respawned the killed worker"
    # the killed worker's requests stay counted and the new worker adds on top
    assert _settle(base, before + served) == before + served
    s = parse(httpx.get(f"{base}/metrics", timeout=5).text)
    assert sample(s, "tollhouse_workers") == 2


def test_a_removed_directory_is_made_again(tmp_path: Path) -> None:
    d = tmp_path / "gone"
    d.mkdir()
    m = Metrics(directory=d)
    m.observe_request("mock-1", "mock", 200, total_s=0.01)
    m.flush()
    remove_directory(d)
    assert not d.exists()
    m.observe_request("mock-1", "mock", 200, total_s=0.01)
    s = parse(m.render().decode())  # flushes into a fresh directory, nothing lost
    assert sample(s, "tollhouse_requests_total", **REQ) == 2
    assert sample(s, "tollhouse_workers") == 1
