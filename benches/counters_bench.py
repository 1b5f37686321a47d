"""CPU added per request by reserve + settle (``python benches/counters_bench.py``).

Two levels, each in memory and Redis mode:

* ``counters``: one ``reserve`` + one ``settle`` of the charges a typical request makes.
* ``limiter``: the whole stage (``Limiter.admit`` + ``Limiter.settle``): scope lookup,
  charges, the reservation, headers, alert check.

CPU is this process's ``time.process_time`` per request (the gateway's share); in Redis
mode the Redis server's own CPU per request (``INFO cpu``) is reported beside it, and
the wall time per request shows the two round trips.  Start a redis-server and pass its
URL as the first argument for the Redis rows (otherwise only memory is measured).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from tollhouse.counters import Charge, Counters, MemoryCounters, Reservation
from tollhouse.counters.redis import RedisCounters
from tollhouse.guard.guardrails import RequestScope
from tollhouse.guard.limits import Ask, Limiter
from tollhouse.store.base import KeyRecord

KEY = KeyRecord(
    "h" * 64, "bench", "gk_...", 0.0, 0.0, limit_micros=10**15, limit_reset="daily",
    rpm=10**9, tpm=10**12, team="core",
)  # fmt: skip


def charges(i: int) -> list[Charge]:
    return [
        Charge("b:key:bench:cost:daily:2026-11-23", 98_000, 10**15, expire_at_ms=2**41),
        Charge("r:key:bench", 1, 10**9, window_ms=60_000),
        Charge("t:key:bench", 600, 10**12, window_ms=60_000),
        Charge("b:team:core:cost:monthly:2026-11", 98_000, 10**15, expire_at_ms=2**41),
    ]


async def counters_pair(c: Counters, i: int) -> None:
    now = int(time.time() * 1000)
    r = await c.reserve(charges(i), now_ms=now)
    assert isinstance(r, Reservation)
    await c.settle(r, [51_000, 1, 240, 51_000], now_ms=now)


def limiter_pair(lim: Limiter) -> Callable[[int], Awaitable[None]]:
    scope = RequestScope(key_hash=KEY.hash, team="core", model="gpt-4o-mini", provider="up")
    ask = Ask(scope, KEY, worst_micros=98_000, prompt_tokens=100, max_output_tokens=500)

    async def pair(i: int) -> None:
        adm = await lim.admit(ask)
        await lim.settle(adm, cost_micros=51_000, tokens=240)

    return pair


def run_sync(fn: Callable[[int], Awaitable[None]], n: int) -> tuple[float, float]:
    """Drive coroutines that never suspend (memory mode) without an event loop."""
    for i in range(min(n, 1000)):  # warm up
        _drive(fn(i))
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        _drive(fn(i))
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def _drive(coro: Any) -> None:
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("coroutine suspended: not a memory-only path")


async def redis_cpu(client: Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run_redis(
    fn: Callable[[int], Awaitable[None]], client: Redis, n: int
) -> tuple[float, float, float]:
    for i in range(200):
        await fn(i)
    server0 = await redis_cpu(client)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        await fn(i)
    cpu_us = (time.process_time() - cpu) / n * 1e6
    wall_us = (time.perf_counter() - wall) / n * 1e6
    server_us = (await redis_cpu(client) - server0) / n * 1e6
    return cpu_us, server_us, wall_us


async def main(redis_url: str | None) -> None:
    rows: list[str] = []
    mem = MemoryCounters()
    for name, fn in (
        ("counters (4 charges)", lambda i: counters_pair(mem, i)),
        ("limiter stage (key budget + RPM + TPM)", limiter_pair(Limiter(MemoryCounters()))),
    ):
        best = min(run_sync(fn, 20_000) for _ in range(3))
        rows.append(f"| memory | {name} | {best[0]:.1f} | — | {best[1]:.1f} |")
    if redis_url:
        rc = RedisCounters(redis_url, prefix="bench:")
        lim = Limiter(RedisCounters(redis_url, prefix="bench2:"))
        for name, fn in (
            ("counters (4 charges)", lambda i: counters_pair(rc, i)),
            ("limiter stage (key budget + RPM + TPM)", limiter_pair(lim)),
        ):
            best = min([await run_redis(fn, rc.client, 3_000) for _ in range(3)])
            rows.append(f"| redis | {name} | {best[0]:.1f} | {best[1]:.1f} | {best[2]:.1f} |")
        await rc.client.flushdb()
        await rc.close()
        await lim.stop()
    print("| mode | what (reserve + settle) | client CPU µs/req | Redis CPU µs/req | wall µs/req |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
