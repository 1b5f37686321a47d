"""Headless Locust run against Tollhouse and a mock upstream, in one command.

Starts an OpenAI-shaped mock upstream on 127.0.0.1 (the deterministic mock engine over
HTTP), a ``tollhouse serve`` in front of it (SQLite; Redis counters when --workers > 1),
three ordinary keys and one with a low rpm limit, then runs ``locustfile.py`` headless
for a bounded time and prints, per request type and in total: requests, failures, RPS
and p50/p95/p99 latency.  Afterwards it reads the gateway's own ``/metrics``: answers by
status and code, and the gateway-overhead p50/p99 from its histogram.

    pip install 'locust>=2.30'     # bench-only dependency, not needed by the tests
    python benches/load/run_locust.py --users 20 --duration 30s
    python benches/load/run_locust.py --workers 2      # Redis counters, two workers
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.prom import Samples, parse  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402
from tests.support.servers import free_port  # noqa: E402
from tests.support.upstream import Upstream  # noqa: E402


def _config(work: Path, upstream_url: str, counters: str) -> Path:
    config = {
        "store": f"sqlite:///{work / 'tollhouse.db'}",
        "counters": counters,
        "providers": {
            "up": {"kind": "openai_compatible", "base_url": upstream_url, "api_key": "sk-up"}
        },
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "up", "model": "gpt-4o-mini"}]},
            "embed": {"deployments": [{"provider": "up", "model": "text-embedding-3-small"}]},
        },
        "pricing": {
            "gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60},
            "embed": {"input_per_mtok": 0.02, "output_per_mtok": 0.0},
        },
    }
    path = work / "tollhouse.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _key(config: Path, name: str, *extra: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tollhouse", "keys", "create", "--config", str(config)]
        + ["--name", name, "--json", *extra],
        capture_output=True,
        check=True,
        timeout=60,
    )
    key: str = orjson.loads(out.stdout)["key"]
    return key


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@dataclass
class Row:
    name: str
    count: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float


def _percentile(times: dict[float, int], q: float) -> float:
    """Locust's own rule: the smallest recorded (rounded) time covering rank q."""
    total = sum(times.values())
    rank, seen = q * total, 0
    for ms in sorted(times):
        seen += times[ms]
        if seen >= rank:
            return ms
    return math.nan


def _rows(path: Path) -> list[Row]:
    """Per-request-type rows and the total from locust's final ``--json-file`` stats."""
    entries = orjson.loads(path.read_bytes())
    rows: list[Row] = []
    every: dict[float, int] = {}
    start, end, count, failures = math.inf, 0.0, 0, 0
    for e in sorted(entries, key=lambda e: e["name"]):
        times = {float(k): int(v) for k, v in e["response_times"].items()}
        for ms, n in times.items():
            every[ms] = every.get(ms, 0) + n
        span = max(e["last_request_timestamp"] - e["start_time"], 1e-9)
        start, end = min(start, e["start_time"]), max(end, e["last_request_timestamp"])
        count, failures = count + e["num_requests"], failures + e["num_failures"]
        pcts = [_percentile(times, q) for q in (0.5, 0.95, 0.99)]
        rows.append(
            Row(e["name"], e["num_requests"], e["num_failures"], e["num_requests"] / span, *pcts)
        )
    pcts = [_percentile(every, q) for q in (0.5, 0.95, 0.99)]
    rows.append(Row("**all**", count, failures, count / max(end - start, 1e-9), *pcts))
    return rows


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' estimate: linear interpolation inside the bucket holding rank q."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            inside = count - prev_count
            return prev_bound + (bound - prev_bound) * (
                (rank - prev_count) / inside if inside else 0
            )
        prev_bound, prev_count = bound, count
    return prev_bound


def _overhead(samples: Samples) -> tuple[float, float, float]:
    by_le: dict[float, float] = {}
    count = 0.0
    for (name, labels), value in samples.items():
        if name == "tollhouse_overhead_seconds_bucket":
            le = dict(labels)["le"]
            bound = math.inf if le == "+Inf" else float(le)
            by_le[bound] = by_le.get(bound, 0) + value
        elif name == "tollhouse_overhead_seconds_count":
            count += value
    buckets = list(by_le.items())
    return histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets), count


def _report(rows: list[Row], samples: Samples, args: argparse.Namespace) -> str:
    out: list[str] = []
    header = "| request | count | fail | RPS | p50 ms | p95 ms | p99 ms |"
    out.append(header)
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(
            f"| {r.name} | {r.count} | {r.failures} | {r.rps:.1f} "
            f"| {r.p50:.0f} | {r.p95:.0f} | {r.p99:.0f} |"
        )
    statuses: dict[tuple[str, str], float] = {}
    for (name, labels), value in samples.items():
        if name == "tollhouse_requests_total":
            lab = dict(labels)
            key = (lab["status"], lab["code"] or "ok")
            statuses[key] = statuses.get(key, 0) + value
    out.append("")
    out.append(
        "gateway answers: "
        + ", ".join(f"{s} {c}: {int(n)}" for (s, c), n in sorted(statuses.items()))
    )
    refusals = {
        f"{dict(labels)['scope']} {dict(labels)['limit']}": value
        for (name, labels), value in samples.items()
        if name == "tollhouse_rate_limit_rejections_total"
    }
    if refusals:
        out.append(
            "limit refusals (from /metrics): "
            + ", ".join(f"{k}: {int(v)}" for k, v in sorted(refusals.items()))
        )
    p50, p99, n = _overhead(samples)
    out.append(
        f"gateway overhead (from /metrics, {int(n)} requests): "
        f"p50 ~{p50 * 1000:.2f} ms, p99 ~{p99 * 1000:.2f} ms (histogram estimate)"
    )
    out.append(
        f"setup: {args.users} users, {args.duration}, {args.workers} worker(s); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load avg {os.getloadavg()[0]:.1f} at the end (shared machine: numbers are noisy)"
    )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=20)
    parser.add_argument("--duration", default="20s", help="locust --run-time (e.g. 30s, 2m)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--limited-rpm", type=int, default=30)
    args = parser.parse_args()
    locust = shutil.which("locust")
    if locust is None:
        print("locust is not installed: pip install 'locust>=2.30'", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="tollhouse-locust-") as tmp, Upstream() as up:
        work = Path(tmp)
        redis: RedisServer | None = None
        counters = "memory"
        if args.workers > 1:
            redis = RedisServer(work)
            redis.start()
            counters = redis.url
        gateway: subprocess.Popen[bytes] | None = None
        log = open(work / "gateway.log", "wb")
        try:
            config = _config(work, up.url, counters)
            keys = [_key(config, f"load-{i}") for i in range(3)]
            limited = _key(config, "load-limited", "--rpm", str(args.limited_rpm))
            port = free_port()
            gateway = subprocess.Popen(
                [sys.executable, "-m", "tollhouse", "serve", "--config", str(config)]
                + ["--port", str(port), "--workers", str(args.workers)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            base = f"http://127.0.0.1:{port}"
            _wait_ready(f"{base}/readyz", gateway)
            env = {
                **os.environ,
                "TOLLHOUSE_KEYS": ",".join(keys),
                "TOLLHOUSE_LIMITED_KEY": limited,
                "TOLLHOUSE_MODELS": "gpt-4o-mini",
                "TOLLHOUSE_EMBED_MODEL": "embed",
            }
            stats = work / "locust.json"  # locust adds the .json to --json-file
            cmd = [
                locust, "-f", str(HERE / "locustfile.py"), "--headless",
                "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
                "--run-time", args.duration, "--host", base,
                "--json-file", str(stats.with_suffix("")), "--skip-log", "--stop-timeout", "5",
            ]  # fmt: skip
            budget = _seconds(args.duration) + 120
            run = subprocess.run(cmd, env=env, timeout=budget, capture_output=True, text=True)
            if not stats.exists():
                print(run.stdout[-2000:], run.stderr[-4000:], file=sys.stderr)
                return 1
            time.sleep(1.5)  # the workers flush their metrics every second
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
                samples = parse(r.read().decode())
            print(_report(_rows(stats), samples, args))
        finally:
            if gateway is not None:
                gateway.terminate()
                gateway.wait(timeout=30)
            log.close()
            if redis is not None:
                redis.stop()
    return 0


def _seconds(duration: str) -> float:
    units: dict[str, float] = {"s": 1, "m": 60, "h": 3600}
    total, num = 0.0, ""
    for ch in duration:
        if ch.isdigit() or ch == ".":
            num += ch
        else:
            total += float(num) * units[ch]
            num = ""
    return total + (float(num) if num else 0)


if __name__ == "__main__":
    sys.exit(main())
