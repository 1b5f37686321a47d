"""Redis-only behaviour: several processes share one count, outages are typed and
recover without a restart, retried scripts never charge twice, keys expire."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time

import pytest
from redis.asyncio import Redis
from tests.support.redis import RedisServer

from tollhouse.counters import Charge, CountersUnavailable, Level, Reservation, open_counters
from tollhouse.counters.memory import MemoryCounters
from tollhouse.counters.redis import RedisCounters

_WORKER = """
import asyncio, sys
from tollhouse.counters import Charge, Reservation
from tollhouse.counters.redis import RedisCounters

async def main(url: str, prefix: str, n: int) -> None:
    c = RedisCounters(url, prefix=prefix)
    async def one() -> bool:
        r = await c.reserve(
            [Charge("rpm", 1, 250, window_ms=60_000), Charge("usd", 3, 10_000)], now_ms=1
        )
        if isinstance(r, Reservation):
            await c.settle(r, [1, 2], now_ms=2)
            return True
        return False
    got = await asyncio.gather(*(one() for _ in range(n)))
    await c.close()
    print(sum(got))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_factory_and_sharing_property(redis_url: str) -> None:
    assert isinstance(open_counters("memory"), MemoryCounters)
    assert not open_counters("memory").shared_across_processes
    backend = open_counters(redis_url)
    assert isinstance(backend, RedisCounters)
    assert backend.shared_across_processes


def test_three_processes_share_one_limit(redis_url: str) -> None:
    prefix = f"mp{secrets.token_hex(4)}:"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, prefix, "200"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    admitted = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(admitted) == 250  # 600 tried across 3 processes, exactly the limit admitted

    async def check() -> None:
        c = RedisCounters(redis_url, prefix=prefix)
        levels = await c.levels(
            [Charge("rpm", 0, 250, window_ms=60_000), Charge("usd", 0, 10_000)], now_ms=3
        )
        assert levels == [Level(250, 0), Level(500, 0)]
        assert await c.held_total() == 0
        await c.close()

    asyncio.run(check())


async def test_retried_reserve_charges_once(redis_url: str) -> None:
    c = RedisCounters(redis_url, prefix=f"r{secrets.token_hex(4)}:")
    charges = [Charge("usd", 40, 100), Charge("rpm", 1, 5, window_ms=60_000)]
    first = await c.reserve(charges, now_ms=0, rid="same")
    again = await c.reserve(charges, now_ms=1, rid="same")
    assert isinstance(first, Reservation) and isinstance(again, Reservation)
    assert first.levels == again.levels == [40, 1]
    assert await c.levels(charges, now_ms=2) == [Level(0, 40), Level(1, 0)]
    await c.close()


async def test_counter_keys_expire(redis_url: str) -> None:
    prefix = f"e{secrets.token_hex(4)}:"
    c = RedisCounters(redis_url, prefix=prefix)
    now = int(time.time() * 1000)
    r = await c.reserve(
        [Charge("day", 5, 100, expire_at_ms=now + 3_600_000), Charge("rpm", 1, 9, window_ms=MIN)],
        now_ms=now,
        hold_ms=1_000,
    )
    assert isinstance(r, Reservation)
    await c.settle(r, [5, 1], now_ms=now + 1)
    raw: Redis = c.client
    day_ttl = await raw.pttl(prefix + "day")
    assert 3_500_000 < day_ttl <= 3_600_000
    assert 0 < await raw.pttl(prefix + "rpm") <= 2 * MIN
    # A budget without a reset window is kept.
    r2 = await c.reserve([Charge("lifetime", 1, 10)], now_ms=now)
    assert isinstance(r2, Reservation)
    await c.settle(r2, [1], now_ms=now)
    assert await raw.pttl(prefix + "lifetime") == -1
    await c.close()


MIN = 60_000


async def test_outage_is_typed_and_recovers_without_restart(redis_server: RedisServer) -> None:
    c = RedisCounters(redis_server.url, prefix="o:", timeout=0.5)
    charge = [Charge("usd", 10, 100)]
    r = await c.reserve(charge, now_ms=0)
    assert isinstance(r, Reservation)
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(CountersUnavailable) as err:
        await c.reserve(charge, now_ms=1)
    assert time.monotonic() - started < 3
    assert err.value.status == 503
    assert "127.0.0.1" in err.value.message
    with pytest.raises(CountersUnavailable):
        await c.settle(r, [10], now_ms=2)
    assert not await c.ping()
    redis_server.start()  # same port, empty data (no persistence in tests)
    deadline = time.monotonic() + 10
    while not await c.ping():
        assert time.monotonic() < deadline, "client did not reconnect"
        await asyncio.sleep(0.05)
    r2 = await c.reserve(charge, now_ms=3)
    assert isinstance(r2, Reservation)
    assert await c.settle(r2, [10], now_ms=4) == [10]
    await c.close()


async def test_unreachable_at_start_is_typed() -> None:
    from tests.support.redis import free_port

    c = RedisCounters(f"redis://user:pw@127.0.0.1:{free_port()}/0", timeout=0.3)
    with pytest.raises(CountersUnavailable) as err:
        await c.levels([Charge("usd", 0, 1)], now_ms=0)
    assert "pw" not in err.value.message
    await c.close()
