"""Where the gateway's own CPU goes: the ASGI app called in-process (no Granian, no load
client), the full pipeline of ``overhead.py``, against the same fast mock upstream.

    python benches/load/profile_inprocess.py                 # CPU per request
    python benches/load/profile_inprocess.py --profile       # + cProfile, by package
    python benches/load/profile_inprocess.py --stream --bare
    py-spy record --gil -o /tmp/in.svg -- python benches/load/profile_inprocess.py -n 20000

CPU per request is ``time.process_time()`` (every thread: the spend writer's SQLite
thread too) and the main thread's alone, as the minimum and median over chunks of 250
requests (the minimum is the least disturbed by other processes).  ``--profile`` prints
cProfile's own time per function for Tollhouse's modules and the totals per package; the
profiler inflates small functions, so read the shares, not the absolute values.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import overhead
import uvloop

from tollhouse.app import build_app
from tollhouse.config import load_config

CHUNK = 250


def _by_package(stats: pstats.Stats, n: int) -> str:
    per_pkg: collections.Counter[str] = collections.Counter()
    per_fn: collections.Counter[str] = collections.Counter()
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (file, line, name), (_, _, own, _, _) in raw.items():
        if "/tollhouse/providers/_http1" in file:
            pkg = "upstream HTTP client (providers/_http1; its send() is the socket write)"
        elif "/tollhouse/" in file:
            pkg = "tollhouse pipeline"
            per_fn[f"{file.split('/tollhouse/')[-1]}:{line}({name})"] += own
        elif "site-packages/" in file:
            pkg = file.split("site-packages/")[1].split("/")[0]
        elif file == "~":
            pkg = "builtins (C)"
        else:
            pkg = "stdlib: " + Path(file).name
        per_pkg[pkg] += own
    lines = ["µs/request (cProfile own time)  package"]
    lines += [f"{v / n * 1e6:10.1f}  {k}" for k, v in per_pkg.most_common(12)]
    lines += ["", "µs/request  Tollhouse function"]
    lines += [f"{v / n * 1e6:10.2f}  {k}" for k, v in per_fn.most_common(30)]
    return "\n".join(lines)


async def run(args: argparse.Namespace, workdir: Path, upstream: str, key: str) -> None:
    name = "bench.yaml" if not args.bare else "bench-bare.yaml"
    app = build_app(load_config(str(workdir / name)))
    await app.gw.start()
    body = orjson.dumps({**overhead.BODY, "stream": True} if args.stream else overhead.BODY)
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if not args.bare:
        headers.append((overhead.SESSION_HEADER.encode(), b"bench-session"))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": headers,
        "query_string": b"",
        "http_version": "1.1",
        "scheme": "http",
    }
    statuses: collections.Counter[int] = collections.Counter()

    async def one() -> None:
        sent = False
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never  # the client stays until the answer is out
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        await app(scope, receive, send)

    for _ in range(300):  # warm-up: connections, caches, first-call paths
        await one()
    profiler = cProfile.Profile() if args.profile else None
    chunks: list[float] = []
    cpu0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    for _ in range(max(1, args.n // CHUNK)):
        t = time.thread_time()
        for _ in range(CHUNK):
            await one()
        chunks.append((time.thread_time() - t) / CHUNK * 1e6)
    if profiler is not None:
        profiler.disable()
    await asyncio.sleep(0.3)  # the spend writer's batch
    cpu = (time.process_time() - cpu0) / (len(chunks) * CHUNK) * 1e6
    chunks.sort()
    kind = "stream" if args.stream else "non-stream"
    config = "key auth only" if args.bare else "full pipeline"
    print(f"{kind}, {config}: {len(chunks) * CHUNK} requests, answers {dict(statuses)}")
    print(
        f"  CPU per request: process {cpu:.1f} µs; main thread min {chunks[0]:.1f} µs, "
        f"median {chunks[len(chunks) // 2]:.1f} µs (chunks of {CHUNK})"
    )
    if profiler is not None:
        print(_by_package(pstats.Stats(profiler), len(chunks) * CHUNK))
    await app.gw.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="requests measured")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--bare", action="store_true", help="key auth only (tollhouse-bare)")
    parser.add_argument("--profile", action="store_true", help="cProfile, by package")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tollhouse-prof-") as tmp:
        workdir = Path(tmp)
        port = overhead.free_port()
        up = overhead.spawn(
            [sys.executable, str(overhead.HERE / "fast_upstream.py"), "--port", str(port)],
            {},
            workdir,
            port,
        )
        try:
            upstream = f"http://127.0.0.1:{port}"
            key = overhead.write_target_config(workdir, upstream, pipeline=not args.bare)
            uvloop.run(run(args, workdir, upstream, key))
        finally:
            up.terminate()
            up.wait(10)


if __name__ == "__main__":
    main()
