"""Incident book and API cost (``python benches/incidents_bench.py [STORE_URL]``).

Over in-process ASGI on a store (a temporary SQLite file unless a URL is given): 1000
incidents opened through ``open_or_join``, 200 joins of one source, 1000 ingested runtime
events on the incidents' route and 500 ``provider.failover`` + 500 ``policy.blocked``
entries in the audit chain; then the median wall time of a filtered, sorted list page
(limit 100) and of one incident's detail (its timeline plus what joins at read time).
Management-plane numbers: nothing here is on the request path.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time

import httpx
from starlette.applications import Starlette

from tollhouse import control
from tollhouse.config import Config, Secret
from tollhouse.control._ratelimit import ControlRateLimiter
from tollhouse.control.audit_chain import audit_for
from tollhouse.control.incidents_book import book_for
from tollhouse.events.types import Event
from tollhouse.guard.keys import KeyCache
from tollhouse.store import SqlStore, open_store
from tollhouse.store.writer import SpendWriter

ADMIN = "adm_" + "bench" * 8


class Gw:
    def __init__(self, store: SqlStore) -> None:
        self.config = Config(admin_key=Secret(ADMIN))
        self.store = store
        self.keys = KeyCache(store)
        self.spend = SpendWriter(store, interval=60)


async def timed(client: httpx.AsyncClient, path: str, n: int) -> float:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = await client.get(path, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise RuntimeError(r.text)
    return statistics.median(times)


async def main(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqlStore)
    await store.open()
    book = book_for(store)
    common = {"title": "t", "severity": "high", "route": "prod-chat", "provider": "openai"}
    t0 = time.perf_counter()
    for i in range(1000):
        await book.open_or_join("default", source_kind="alert_rule", source_ref=f"r{i}", **common)
    per_open = (time.perf_counter() - t0) / 1000 * 1000
    t0 = time.perf_counter()
    for _ in range(200):
        joined = await book.open_or_join(
            "default", source_kind="alert_rule", source_ref="r0", **common
        )
    per_join = (time.perf_counter() - t0) / 200 * 1000
    limiter = ControlRateLimiter(per_minute=10**9)
    app = Starlette(routes=control.routes(Gw(store), limiter=limiter))
    transport = httpx.ASGITransport(app=app)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        for i in range(1000):
            body = {"route_id": "prod-chat", "event_id": f"e{i}", "timestamp": 1}
            headers = {**admin, "Idempotency-Key": f"k{i}"}
            await c.post("/v1/ingest/runtime", json=body, headers=headers)
        log = audit_for(store)
        for _ in range(500):
            failover = {"workspaceId": "default", "routeId": "prod-chat", "to": "b"}
            log.record_event(Event("provider.failover", failover))
            log.record_event(Event("policy.blocked", {"ruleId": "x", "model": "prod-chat"}))
        await log.flush()
        base = "/v1/workspaces/default/incidents"
        listing = await timed(c, f"{base}?status=active&severity=high&sort=severity:desc", 50)
        detail = await timed(c, f"{base}/{joined.incident_id}", 30)
    await log.stop()
    await store.close()
    print(
        f"{url.split(':')[0]}: open_or_join {per_open:.2f} ms (new), {per_join:.2f} ms (join); "
        f"list page median {listing:.1f} ms; detail median {detail:.1f} ms"
    )


if __name__ == "__main__":
    folder = tempfile.mkdtemp()
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{folder}/bench.db"))
