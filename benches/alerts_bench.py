"""Alert evaluation cost (``python benches/alerts_bench.py [STORE_URL] [ROWS]``).

On a store (a temporary SQLite file unless a URL is given): ROWS spend rows (default
100 000) spread over the last 300 s, 30 enabled rules (every metric, windows of 60, 300
and 900 s) in one workspace; then the median wall time of one quiet evaluation round (the
lease, the rules, the states and one set of window queries per distinct window; nothing
fires) and of one window's numbers alone.  Background work: nothing here is on the
request path.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

import orjson

from tollhouse.events.alert_window import window_stats
from tollhouse.events.evaluator import AlertEvaluator
from tollhouse.store import SqlStore, open_store
from tollhouse.store.base import SpendRow

METRICS: list[tuple[str, str, float]] = [
    ("latency", "threshold_ms", 1e9),
    ("error_rate", "threshold", 1.0),
    ("cost", "threshold", 1e9),
    ("tokens", "threshold", 1e12),
    ("requests", "threshold", 1e12),
    ("budget", "threshold", 1.0),
]


async def never(target: dict[str, Any], event: Any) -> dict[str, Any]:
    raise RuntimeError("nothing fires in this bench")


async def main(url: str, rows: int) -> None:
    store = open_store(url)
    assert isinstance(store, SqlStore)
    await store.open()
    now = time.time()
    batch = []
    for i in range(rows):
        batch.append(
            SpendRow(
                uuid.uuid4().hex,
                f"key-{i % 50}",
                "m",
                "p",
                "m",
                now - 300 * i / rows,
                prompt_tokens=100,
                completion_tokens=20,
                cost_micros=50,
                latency_ms=float(i % 997),
                status=500 if i % 50 == 0 else 200,
            )
        )
        if len(batch) == 5000:
            await store.insert_spend(batch)
            batch = []
    await store.insert_spend(batch)
    steps = []
    for i in range(30):
        metric, field, threshold = METRICS[i % len(METRICS)]
        body = {
            "name": f"rule {i}",
            "condition": {
                "metric": metric,
                field: threshold,
                "window_seconds": (60, 300, 900)[i % 3],
            },
            "delivery_targets": [],
            "severity": "low",
            "enabled": True,
        }
        steps.append(
            (
                "INSERT INTO workspace_resources (workspace_id, kind, id, body, created_at, "
                "updated_at) VALUES ('default', 'alert-rules', ?, ?, ?, ?)",
                (f"rule_{i}", orjson.dumps(body).decode(), now, now),
            )
        )
    await store._transaction(steps)
    ev = AlertEvaluator(store, never, never, clock=lambda: now)
    rounds = []
    for _ in range(7):
        t = time.perf_counter()
        if await ev.run_once():
            raise RuntimeError("a rule fired")
        rounds.append((time.perf_counter() - t) * 1000)
    windows = []
    for _ in range(7):
        t = time.perf_counter()
        await window_stats(store, "default", now - 300, now)
        windows.append((time.perf_counter() - t) * 1000)
    await store.close()
    print(f"store {store.dialect}, {rows} spend rows in 300 s, 30 rules (3 windows)")
    print(f"  one evaluation round      median {statistics.median(rounds):8.1f} ms")
    print(f"  one 300 s window's numbers median {statistics.median(windows):8.1f} ms")


if __name__ == "__main__":
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    if len(sys.argv) > 1 and sys.argv[1] != "-":
        asyncio.run(main(sys.argv[1], count))
    else:
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(main(f"sqlite:///{d}/alerts-bench.db", count))
