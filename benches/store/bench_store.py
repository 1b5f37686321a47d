"""What the store side costs the request path, and how fast spend rows reach the disk.

    python benches/store/bench_store.py [--rows 50000] [--postgres-url postgresql://...]

Measures (1) ``KeyCache.authenticate`` and ``SpendWriter.submit`` per call, the two
store-side calls on every request, and (2) sustained ``SpendWriter`` throughput into
SQLite (and PostgreSQL when a URL is given): rows submitted as fast as possible, time
until all are committed.  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import timeit
from pathlib import Path

from tollhouse.guard.keys import KeyCache, generate_key, hash_key, key_label
from tollhouse.store import KeyRecord, SpendRow, open_store
from tollhouse.store.writer import SpendWriter


def _row(i: int, key_hash: str) -> SpendRow:
    return SpendRow(
        id=f"gen-{i:012d}",
        key_hash=key_hash,
        model="gpt-4o-mini",
        provider="up",
        upstream_model="gpt-4o-mini",
        created_at=time.time(),
        prompt_tokens=120,
        completion_tokens=300,
        cost_micros=198,
        latency_ms=12.5,
    )


async def hot_path(url: str, keys: int) -> list[tuple[str, str]]:
    store = open_store(url)
    await store.open()
    now = time.time()
    raws = [generate_key() for _ in range(keys)]
    for raw in raws:
        await store.create_key(KeyRecord(hash_key(raw), "b", key_label(raw), now, now))
    cache = KeyCache(store)
    await cache.refresh(force=True)
    raw = raws[keys // 2]
    n = 200_000
    auth_ns = min(timeit.repeat(lambda: cache.authenticate(raw), number=n, repeat=3)) / n * 1e9
    writer = SpendWriter(store, max_queue=n + 1)  # not started: measures submit alone
    rows = [_row(i, hash_key(raw)) for i in range(n)]
    it = iter(rows)
    started = time.perf_counter()
    for _ in range(n):
        writer.submit(next(it))
    submit_ns = (time.perf_counter() - started) / n * 1e9
    await store.close()
    return [
        (f"KeyCache.authenticate ({keys} keys cached)", f"{auth_ns:.0f} ns/call"),
        ("SpendWriter.submit", f"{submit_ns:.0f} ns/call"),
    ]


async def throughput(url: str, rows: int, label: str) -> tuple[str, str]:
    store = open_store(url)
    await store.open()
    writer = SpendWriter(store, max_queue=rows + 1)
    await writer.start()
    key_hash = "a" * 64
    started = time.perf_counter()
    for i in range(rows):
        writer.submit(_row(i, key_hash))
        if i % 1000 == 999:
            await asyncio.sleep(0)  # let the writer run, as a serving loop would
    while writer.pending:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    await writer.stop()
    assert await store.key_spend_since(key_hash, 0) == rows * 198
    await store.close()
    return (
        f"SpendWriter -> {label}, {rows} rows, batch 256",
        f"{rows / elapsed:,.0f} rows/s",
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = await hot_path(f"sqlite:///{Path(tmp) / 'hot.db'}", args.keys)
        results.append(
            await throughput(f"sqlite:///{Path(tmp) / 'tp.db'}", args.rows, "SQLite (WAL)")
        )
    if args.postgres_url:
        results.append(await throughput(args.postgres_url, args.rows, "PostgreSQL"))
    print("| measurement | result |\n|---|---|")
    for name, value in results:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    asyncio.run(main())
