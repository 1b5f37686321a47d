"""The overhead harness: a direct call vs the same call through Tollhouse, in one run.

Starts a fast mock upstream (``fast_upstream.py``) on 127.0.0.1, a ``tollhouse serve``
(1 worker, key auth on, SQLite) in front of it, and the bare pass-through floors
(Starlette + httpx, Starlette + aiohttp, both on Granian; ``granian-canned``, a raw ASGI
app that answers without any upstream call, shows the server's own floor).  For each target, at each
concurrency, non-stream and stream, it drives keep-alive load for ``--duration`` seconds
and reports RPS, p50/p99 latency, the added p50/p99 over the direct call, and the
target's process-tree CPU per request read from /proc (utime + stime).

    python benches/load/overhead.py              # every target (litellm when found), 1/8/32 conns
    python benches/load/overhead.py --targets direct,tollhouse --duration 5

``tollhouse`` is the full pipeline (key auth, key and team budgets reserved and settled,
RPM/TPM, redaction, content policies, session breakers with loop detection, token
estimate, cost, metrics, spend rows); ``tollhouse-bare`` is key auth with the default
redaction only.  ``litellm`` needs ``pip install 'litellm[proxy]'`` (its own venv is
best; ``--litellm-bin`` or ``LITELLM_BIN`` or PATH, see ``litellm_target.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import yaml
from litellm_target import find_litellm, free_port, litellm_target

HERE = Path(__file__).resolve().parent
DEFAULT_TARGETS = (
    "direct",
    "tollhouse",
    "tollhouse-bare",
    "starlette+httpx",
    "starlette+aiohttp",
    "granian-canned",
)
TICK = os.sysconf("SC_CLK_TCK")
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, how are you?"}]}


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and all its live descendants."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / TICK
    total = 0.0
    for pid, cpu in times.items():
        p = pid
        while p > 1:
            if p == root:
                total += cpu
                break
            p = parents.get(p, 0)
    return total


def tree_rss_mb(root: int) -> tuple[float, float]:
    """Resident memory of ``root``'s process tree: (total MB, largest process MB)."""
    parents: dict[int, int] = {}
    rss: dict[int, float] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
            resident = int(Path(f"/proc/{entry}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry)] = int(raw[raw.rfind(")") + 2 :].split()[1])
        rss[int(entry)] = resident * page / 2**20
    mine = []
    for pid, mb in rss.items():
        p = pid
        while p > 1:
            if p == root:
                mine.append(mb)
                break
            p = parents.get(p, 0)
    return sum(mine), max(mine, default=0.0)


@dataclass
class Result:
    target: str
    stream: bool
    conc: int
    requests: int
    errors: int
    seconds: float
    p50: float
    p99: float
    ttfb50: float
    cpu_ms: float | None
    p90: float = float("nan")
    rss_mb: tuple[float, float] | None = None  # process tree total, largest process

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def drive(
    url: str, headers: dict[str, str], stream: bool, conc: int, duration: float
) -> tuple[list[float], list[float], int]:
    body = orjson.dumps({**BODY, "stream": True} if stream else BODY)
    latencies: list[float] = []
    ttfbs: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=conc, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        first = None
                        async for _ in resp.content.iter_any():
                            if first is None:
                                first = time.perf_counter()
                        t1 = time.perf_counter()
                        if resp.status != 200:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append((t1 - t0) * 1000)
                ttfbs.append(((first or t1) - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(conc)))
    return latencies, ttfbs, errors


def measure(
    name: str,
    url: str,
    headers: dict[str, str],
    pid: int | None,
    stream: bool,
    conc: int,
    duration: float,
    repeat: int = 1,
) -> Result:
    """One cell; with ``repeat`` > 1 the least disturbed of the runs (lowest CPU per
    request, or lowest p50 for the direct call) is kept."""
    asyncio.run(drive(url, headers, stream, conc, min(1.0, duration / 3)))  # warm-up
    runs = [_measure_once(name, url, headers, pid, stream, conc, duration) for _ in range(repeat)]
    return min(runs, key=lambda r: (r.cpu_ms if r.cpu_ms is not None else 0.0, r.p50))


def _measure_once(
    name: str,
    url: str,
    headers: dict[str, str],
    pid: int | None,
    stream: bool,
    conc: int,
    duration: float,
) -> Result:
    cpu0 = tree_cpu(pid) if pid else 0.0
    t0 = time.perf_counter()
    lat, ttfb, errors = asyncio.run(drive(url, headers, stream, conc, duration))
    seconds = time.perf_counter() - t0
    cpu = (tree_cpu(pid) - cpu0) * 1000 / max(1, len(lat)) if pid else None
    rss = tree_rss_mb(pid) if pid else None
    return Result(
        name,
        stream,
        conc,
        len(lat),
        errors,
        seconds,
        pct(lat, 0.5),
        pct(lat, 0.99),
        pct(ttfb, 0.5),
        cpu,
        pct(lat, 0.9),
        rss,
    )


def spawn(cmd: list[str], env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return proc


# The full pipeline of issue 7: key auth, the key's budget and RPM/TPM, a team budget
# and rate limits, redaction (the ``standard`` preset: every secret and personal-data
# family, plus a custom pattern), content policies (keywords, a regex, a size limit,
# model allow list), session breakers with loop detection (``x-gate-session-id``), token
# estimate, cost, Prometheus metrics and the background spend rows. Every limit is far
# above what a run can reach, so nothing is refused.
HUGE = 10**12
FULL_PIPELINE: dict[str, object] = {
    "limits": {
        "teams": {
            "bench": {"budget_usd": 10**6, "period": "monthly", "rpm": HUGE, "tpm": HUGE},
        },
    },
    "redaction": {
        "modes": {"default": "mask"},
        "custom": [{"name": "EMPLOYEE_ID", "pattern": "EMP-[0-9]{6}"}],
    },
    "policies": [
        {
            "id": "no-internal-projects",
            "action": "block",
            "keywords": ["project bluebird", "codename falcon", "internal only"],
            "whole_word": True,
        },
        {"id": "jailbreak", "action": "block", "regex": ["ignore (all )?previous instructions"]},
        {"id": "size", "action": "block", "max_bytes": 1_000_000},
        {"id": "models", "action": "block", "models_allow": ["gpt-*"]},
    ],
    "sessions": {
        "max_requests": HUGE,
        "max_tokens": HUGE,
        "max_cost_usd": 10**6,
        "loop": {"max_repeats": HUGE},
    },
}
SESSION_HEADER = "x-gate-session-id"


def tollhouse_target(
    workdir: Path, upstream: str, pipeline: bool = True
) -> tuple[subprocess.Popen[bytes], int, str]:
    """``tollhouse serve`` in front of ``upstream``: the full pipeline, or with
    ``pipeline=False`` key auth only (no limits, no policies; redaction still runs, it
    is the default preset's)."""
    raw = write_target_config(workdir, upstream, pipeline=pipeline)
    path = workdir / ("bench.yaml" if pipeline else "bench-bare.yaml")
    port = free_port()
    cmd = [sys.executable, "-m", "tollhouse", "serve", "--config", str(path), "--port", str(port)]
    return spawn(cmd, {}, workdir, port), port, raw


def write_target_config(workdir: Path, upstream: str, *, pipeline: bool = True) -> str:
    """The target's config file (``bench.yaml`` / ``bench-bare.yaml``) and SQLite store
    with one key in ``workdir``; the raw key."""
    from tollhouse.guard.keys import generate_key, hash_key, key_label
    from tollhouse.store import open_store
    from tollhouse.store.base import KeyRecord

    store = f"sqlite:///{workdir / 'bench.db'}"
    config: dict[str, object] = {
        "store": store,
        "providers": {
            "up": {"kind": "openai_compatible", "base_url": f"{upstream}/v1", "api_key": "sk-bench"}
        },
        "models": {"gpt-4o-mini": {"deployments": [{"provider": "up", "model": "gpt-4o-mini"}]}},
        **(FULL_PIPELINE if pipeline else {}),
    }
    path = workdir / ("bench.yaml" if pipeline else "bench-bare.yaml")
    path.write_text(yaml.safe_dump(config))
    raw = generate_key()

    async def make_key() -> None:
        s = open_store(store)
        await s.open()
        now = time.time()
        # The key's own budget and RPM/TPM, and its team's (full pipeline only).
        limits = (
            {"limit_micros": 10**12, "limit_reset": "monthly", "rpm": HUGE, "tpm": HUGE}
            if pipeline
            else {}
        )
        record = KeyRecord(hash_key(raw), "bench", key_label(raw), now, now, team="bench", **limits)
        await s.create_key(record)
        await s.close()

    asyncio.run(make_key())
    return raw


def floor_target(app: str, upstream: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    code = (
        "from pathlib import Path\nfrom granian import Granian\n"
        f"Granian('passthrough:{app}', factory=True, interface='asgi', address='127.0.0.1', "
        f"port={port}, workers=1, http='1', websockets=False, log_access=False, "
        f"{os.environ.get('BENCH_GRANIAN_EXTRA', '')}"
        f"working_dir=Path({str(HERE)!r})).serve()\n"
    )
    return spawn([sys.executable, "-c", code], {"BENCH_UPSTREAM": upstream}, workdir, port), port


def stage_means(metrics_url: str) -> dict[str, tuple[float, int]]:
    """Per pipeline stage: (mean ms, count) from the gateway's own
    ``tollhouse_stage_duration_seconds`` (every request of every cell of the target)."""
    import urllib.request

    time.sleep(1.2)  # one metrics flush interval
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:  # noqa: S310 - 127.0.0.1
        text = resp.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("tollhouse_stage_duration_seconds_"):
            continue
        name, _, value = line.rpartition(" ")
        stage = name.split('stage="', 1)[1].split('"', 1)[0]
        if name.startswith("tollhouse_stage_duration_seconds_sum"):
            sums[stage] = float(value)
        elif name.startswith("tollhouse_stage_duration_seconds_count"):
            counts[stage] = int(float(value))
    return {s: (sums[s] * 1000 / n, n) for s, n in counts.items() if n and s in sums}


def stage_table(stages: dict[str, dict[str, tuple[float, int]]]) -> str:
    """Mean wall time per pipeline stage (all cells), as the gateway's metrics saw it."""
    names = ["auth", "parse", "security", "limits", "route", "upstream", "respond", "relay"]
    names.append("settle")
    lines = [
        "| target | " + " | ".join(f"{n} ms" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for target, means in stages.items():
        cells = [f"{means[n][0]:.3f}" if n in means else "—" for n in names]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    direct = {(r.stream, r.conc): r for r in results if r.target == "direct"}
    lines = [
        "| target | mode | conns | RPS | p50 ms | p99 ms | added p50 | added p90 | added p99 "
        "| added TTFB p50 | CPU ms/req | RSS MB (max proc) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d = direct.get((r.stream, r.conc))
        added = (
            (f"{r.p50 - d.p50:+.3f}", f"{r.p99 - d.p99:+.3f}", f"{r.ttfb50 - d.ttfb50:+.3f}")
            if d and r.target != "direct"
            else ("—", "—", "—")
        )
        added90 = f"{r.p90 - d.p90:+.3f}" if d and r.target != "direct" else "—"
        cpu = f"{r.cpu_ms:.3f}" if r.cpu_ms is not None else "—"
        rss = f"{r.rss_mb[0]:.0f} ({r.rss_mb[1]:.0f})" if r.rss_mb is not None else "—"
        err = f" ({r.errors} err)" if r.errors else ""
        lines.append(
            f"| {r.target} | {'stream' if r.stream else 'non-stream'} | {r.conc} | "
            f"{r.rps:,.0f}{err} | {r.p50:.3f} | {r.p99:.3f} | {added[0]} | {added90} | "
            f"{added[1]} | {added[2]} | {cpu} | {rss} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets",
        default="auto",
        help="comma-separated; 'auto': direct, tollhouse (full pipeline), tollhouse-bare, "
        "the pass-through floors, granian-canned, and litellm when its executable is found",
    )
    parser.add_argument("--conc", default="1,8,32")
    parser.add_argument("--modes", default="non-stream,stream")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per cell; the least disturbed one is kept"
    )
    parser.add_argument("--litellm-bin", help="the LiteLLM proxy for target 'litellm'")
    args = parser.parse_args()
    targets = args.targets.split(",") if args.targets != "auto" else list(DEFAULT_TARGETS)
    if args.targets == "auto":
        try:
            args.litellm_bin = find_litellm(args.litellm_bin)
            targets.append("litellm")
        except SystemExit:
            print("litellm not found (--litellm-bin PATH or LITELLM_BIN): skipped", file=sys.stderr)
    load_start = os.getloadavg()
    concs = [int(c) for c in args.conc.split(",")]
    modes = [m == "stream" for m in args.modes.split(",")]

    procs: list[subprocess.Popen[bytes]] = []
    results: list[Result] = []
    stages: dict[str, dict[str, tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="tollhouse-bench-") as tmp:
        workdir = Path(tmp)
        try:
            up_port = free_port()
            up = spawn(
                [sys.executable, str(HERE / "fast_upstream.py"), "--port", str(up_port)],
                {},
                workdir,
                up_port,
            )
            procs.append(up)
            upstream = f"http://127.0.0.1:{up_port}"
            for target in targets:
                headers = {"content-type": "application/json"}
                pid: int | None = None
                if target == "direct":
                    url = f"{upstream}/v1/chat/completions"
                elif target == "litellm":  # see litellm_target.py
                    binary = find_litellm(args.litellm_bin)
                    proc, port, key = litellm_target(workdir, upstream, binary)
                    procs.append(proc)
                    pid, url = proc.pid, f"http://127.0.0.1:{port}/v1/chat/completions"
                    headers["authorization"] = f"Bearer {key}"
                elif target in ("tollhouse", "tollhouse-bare"):
                    full = target == "tollhouse"
                    proc, port, key = tollhouse_target(workdir, upstream, full)
                    procs.append(proc)
                    pid, url = proc.pid, f"http://127.0.0.1:{port}/v1/chat/completions"
                    headers["authorization"] = f"Bearer {key}"
                    if full:
                        headers[SESSION_HEADER] = "bench-session"
                elif target.startswith(("starlette+", "granian-canned")):
                    app = {
                        "starlette+httpx": "httpx_app",
                        "starlette+aiohttp": "aiohttp_app",
                        "granian-canned": "canned_app",
                        "granian-canned+watch": "canned_watch_app",
                    }[target]
                    proc, port = floor_target(app, upstream, workdir)
                    procs.append(proc)
                    pid, url = proc.pid, f"http://127.0.0.1:{port}/v1/chat/completions"
                else:
                    raise SystemExit(f"unknown target {target}")
                for stream in modes:
                    for conc in concs:
                        r = measure(
                            target, url, headers, pid, stream, conc, args.duration, args.repeat
                        )
                        results.append(r)
                        print(
                            f"  {target:18} {'stream' if stream else 'plain':6} c={conc} "
                            f"rps={r.rps:7.0f} p50={r.p50:.3f} p99={r.p99:.3f} "
                            f"cpu={r.cpu_ms if r.cpu_ms is None else round(r.cpu_ms, 3)}",
                            file=sys.stderr,
                            flush=True,
                        )
                if target.startswith("tollhouse"):
                    stages[target] = stage_means(url.replace("/v1/chat/completions", "/metrics"))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    load = os.getloadavg()
    print(
        f"<!-- {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load_start[0]:.1f} at the start and {load[0]:.1f} at the end, "
        f"{args.duration:.0f} s per run, best of {args.repeat} -->"
    )
    print(table(results))
    if stages:
        print()
        print(stage_table(stages))


if __name__ == "__main__":
    main()
