"""A gateway with memory counters and no webhooks or snapshots does not import the redis
client or aiohttp (about 7 and 10 MiB of every worker's RSS): they are imported where
first needed (``counters: redis://``, a webhook or snapshot sent, the mock served over
HTTP).  The gateway runs in a fresh interpreter, serves requests, and reports what it
imported; with a Redis counters URL the same script does import redis (the check sees
imports at all).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from tests.support.gateway import create_key

_SCRIPT = r"""
import asyncio, sys
import orjson
from tests.support.gateway import asgi_request
from tollhouse.app import build_app
from tollhouse.config import parse_config

store, raw, counters = sys.argv[1:4]
CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hello"}]}


async def main() -> list[int]:
    config = parse_config(
        {
            "store": store,
            "counters": counters,
            "providers": {"mock": {"kind": "mock"}},
            "models": {"mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]}},
            "pricing": {"mock-1": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        }
    )
    app = build_app(config)
    if counters != "memory":
        return []  # built only: no server to count in
    await app.gw.start()
    headers = [("authorization", f"Bearer {raw}"), ("content-type", "application/json")]
    statuses = []
    try:
        for stream in (False, True):
            body = orjson.dumps({**CHAT, "stream": stream})
            status, _, _ = await asgi_request(
                app, "POST", "/v1/chat/completions", body=body, headers=headers
            )
            statuses.append(status)
        for path in ("/healthz", "/metrics"):
            statuses.append((await asgi_request(app, "GET", path))[0])
    finally:
        await app.gw.stop()
    return statuses


statuses = asyncio.run(main())
print(orjson.dumps({
    "statuses": statuses,
    "imported": sorted(m for m in ("redis", "aiohttp") if m in sys.modules),
}).decode())
"""

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, counters: str) -> dict[str, list[object]]:
    store = f"sqlite:///{tmp_path / 't.db'}"
    raw, _ = create_key(store)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, store, raw, counters],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[object]] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def test_memory_counters_without_webhooks_import_neither_redis_nor_aiohttp(
    tmp_path: Path,
) -> None:
    result = _run(tmp_path, "memory")
    assert result["statuses"] == [200, 200, 200, 200]
    assert result["imported"] == []


def test_redis_counters_import_redis(tmp_path: Path) -> None:
    # Building the gateway opens the client lazily (no connection is made here).
    result = _run(tmp_path, "redis://127.0.0.1:1/0")
    assert result["imported"] == ["redis"]
