"""Gateway CPU per request: translated (OpenAI <-> Anthropic) vs pass-through.

    python benches/translate/gateway.py [--requests 400]

Starts two local upstreams on 127.0.0.1 (OpenAI-compatible and Anthropic-format, from
``tests/providers/_upstreams.py``; they answer the same text), one ``tollhouse serve``
(1 worker, key auth on) routing ``pass`` to the first and ``translated`` to the second,
and sends the same chat request to each model from one connection, stream and not,
alternating blocks of 50 requests between the two models.
CPU is the gateway process tree's user+system time from ``/proc`` over the run divided
by the requests, so the client's and upstreams' CPU is not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e._gateway import gateway  # noqa: E402
from tests.providers._upstreams import KEY, anthropic_upstream, openai_upstream  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
BLOCK = 50


def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            out += _tree(int(child))
    return out


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def _gateway_pid(port: int) -> int:
    needle = f":{port:04X}".encode()
    inodes = set()
    for line in Path("/proc/net/tcp").read_bytes().splitlines()[1:]:
        cols = line.split()
        if cols[1].endswith(needle) and cols[3] == b"0A":  # LISTEN
            inodes.add(cols[9].decode())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(proc.name)
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
    raise RuntimeError("gateway process not found")


def run(n: int) -> None:
    with (
        openai_upstream() as oai,
        anthropic_upstream() as anth,
        tempfile.TemporaryDirectory() as tmp,
    ):
        config = {
            "providers": {
                "oai": {"kind": "openai_compatible", "base_url": oai.url, "api_key": KEY},
                "anth": {"kind": "anthropic", "base_url": anth.url, "api_key": KEY},
            },
            "models": {
                "pass": {"deployments": [{"provider": "oai", "model": "m"}]},
                "translated": {"deployments": [{"provider": "anth", "model": "m"}]},
            },
            "pricing": {
                "pass": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                "translated": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
        }
        with gateway(Path(tmp), config) as gw:
            port = int(gw.url.rsplit(":", 1)[1])
            pids = _tree(_gateway_pid(port))
            # keep the upstreams' request logs from growing during the run
            headers = {"authorization": f"Bearer {gw.key}"}
            body = {
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Summarise: " + "lorem ipsum dolor " * 40},
                ],
                "max_tokens": 64,
            }
            print(f"{'model':12s} {'stream':6s} {'cpu ms/req':>10s} {'wall ms/req':>11s}")
            results = {}
            with httpx.Client(base_url=gw.url, headers=headers, timeout=30) as client:
                for stream in (False, True):
                    reqs = {
                        m: {**body, "model": m, "stream": stream} for m in ("pass", "translated")
                    }
                    for req in reqs.values():
                        for _ in range(30):  # warm-up
                            client.post("/v1/chat/completions", json=req).read()
                    cpu = dict.fromkeys(reqs, 0.0)
                    wall = dict.fromkeys(reqs, 0.0)
                    # alternate blocks so load from other processes hits both alike
                    for _ in range(max(1, n // BLOCK)):
                        for model, req in reqs.items():
                            oai.seen.clear()
                            anth.seen.clear()
                            cpu0, t0 = _cpu_s(pids), time.perf_counter()
                            for _ in range(BLOCK):
                                r = client.post("/v1/chat/completions", json=req)
                                r.read()
                                assert r.status_code == 200, r.text
                            cpu[model] += _cpu_s(pids) - cpu0
                            wall[model] += time.perf_counter() - t0
                    done = max(1, n // BLOCK) * BLOCK
                    for model in reqs:
                        results[(model, stream)] = cpu[model] / done * 1000
                        print(
                            f"{model:12s} {str(stream):6s} {cpu[model] / done * 1000:10.3f} "
                            f"{wall[model] / done * 1000:11.3f}"
                        )
            for stream in (False, True):
                ratio = results[("translated", stream)] / results[("pass", stream)]
                print(f"translated / pass-through CPU, stream={stream}: {ratio:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    run(parser.parse_args().requests)
