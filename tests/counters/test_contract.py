"""The counters contract, run against both backends (memory and a real redis-server)."""

from __future__ import annotations

import asyncio
import random

import pytest
from tests.counters.conftest import held_total

from tollhouse.counters import Charge, Counters, Denied, Level, MemoryCounters, Reservation
from tollhouse.errors import InvalidRequest

MIN = 60_000


def fixed(key: str, amount: int, limit: int, expire_at: int | None = None) -> Charge:
    return Charge(key, amount, limit, expire_at_ms=expire_at)


def sliding(key: str, amount: int, limit: int, window: int = MIN) -> Charge:
    return Charge(key, amount, limit, window_ms=window)


async def granted(c: Counters, charges: list[Charge], now: int, **kw: int) -> Reservation:
    r = await c.reserve(charges, now_ms=now, **kw)
    assert isinstance(r, Reservation), r
    return r


async def test_fixed_reserve_settle_release(counters: Counters) -> None:
    r1 = await granted(counters, [fixed("b", 60, 100)], 0)
    assert r1.levels == [60]
    denied = await counters.reserve([fixed("b", 50, 100)], now_ms=1)
    assert isinstance(denied, Denied)
    assert (denied.index, denied.key, denied.level, denied.limit) == (0, "b", 60, 100)
    assert denied.retry_after_ms is None  # a fixed window: room comes at its end
    assert await counters.settle(r1, [30], now_ms=2) == [30]
    assert await counters.levels([fixed("b", 0, 100)], now_ms=3) == [Level(30, 0)]
    r2 = await granted(counters, [fixed("b", 70, 100)], 4)
    assert r2.levels == [100]
    assert await counters.settle(r2, None, now_ms=5) == [30]  # released
    assert await counters.levels([fixed("b", 0, 100)], now_ms=6) == [Level(30, 0)]
    assert await held_total(counters) == 0


async def test_multi_key_is_all_or_nothing(counters: Counters) -> None:
    await granted(counters, [fixed("team", 90, 100)], 0)
    charges = [fixed("key", 20, 1000), sliding("rpm", 1, 10), fixed("team", 20, 100)]
    denied = await counters.reserve(charges, now_ms=1)
    assert isinstance(denied, Denied)
    assert (denied.index, denied.key, denied.level) == (2, "team", 90)
    levels = await counters.levels(charges, now_ms=2)
    assert levels == [Level(0, 0), Level(0, 0), Level(0, 90)]  # nothing was charged
    ok = await granted(counters, [fixed("key", 20, 1000), sliding("rpm", 1, 10)], 3)
    assert ok.levels == [20, 1]


async def test_exceeding_amount_never_fits(counters: Counters) -> None:
    for charge in (fixed("f", 101, 100), sliding("s", 101, 100)):
        denied = await counters.reserve([charge], now_ms=0)
        assert isinstance(denied, Denied)
        assert denied.retry_after_ms == -1


async def test_unsettled_hold_expires_and_late_settle_still_counts(counters: Counters) -> None:
    r = await granted(counters, [fixed("b", 80, 100)], 0, hold_ms=1_000)
    assert isinstance(await counters.reserve([fixed("b", 30, 100)], now_ms=999), Denied)
    # The worker "crashed": after hold_ms the hold is released by the next operation.
    assert await counters.levels([fixed("b", 0, 100)], now_ms=1_000) == [Level(0, 0)]
    r2 = await granted(counters, [fixed("b", 30, 100)], 1_001, hold_ms=1_000)
    # A settle arriving after its hold expired still charges the spend that happened.
    assert await counters.settle(r, [50], now_ms=1_500) == [50]
    assert await counters.levels([fixed("b", 0, 100)], now_ms=1_501) == [Level(50, 30)]
    await counters.settle(r2, [30], now_ms=1_600)
    assert await held_total(counters) == 0


async def test_holds_expire_each_at_its_own_time(counters: Counters) -> None:
    # Holds with different hold times, reserved out of expiry order: each is released
    # exactly at its own expiry, settled ones never come back.
    long = await granted(counters, [fixed("h", 10, 1000)], 0, hold_ms=5_000)
    short = await granted(counters, [fixed("h", 20, 1000)], 1, hold_ms=1_000)
    settled = await granted(counters, [fixed("h", 40, 1000)], 2, hold_ms=500)
    await counters.settle(settled, [4], now_ms=3)
    assert await counters.levels([fixed("h", 0, 1000)], now_ms=1_000) == [Level(4, 30)]
    assert await counters.levels([fixed("h", 0, 1000)], now_ms=1_001) == [Level(4, 10)]
    assert await counters.levels([fixed("h", 0, 1000)], now_ms=4_999) == [Level(4, 10)]
    assert await counters.levels([fixed("h", 0, 1000)], now_ms=5_000) == [Level(4, 0)]
    assert await counters.settle(long, [1], now_ms=5_001) == [5]
    assert await counters.settle(short, [2], now_ms=5_002) == [7]
    assert await held_total(counters) == 0


async def test_sliding_window_is_exact_at_the_edge(counters: Counters) -> None:
    for t in (0, 10, 20):
        await granted(counters, [sliding("rpm", 1, 3)], t)
    denied = await counters.reserve([sliding("rpm", 1, 3)], now_ms=59_999)
    assert isinstance(denied, Denied)
    assert denied.level == 3
    assert denied.retry_after_ms == 1  # the entry at t=0 leaves the window at 60_000
    r = await granted(counters, [sliding("rpm", 1, 3)], 60_000)
    assert r.levels == [3]
    assert r.reset_ms == [10]  # next to leave: the entry at t=10
    denied = await counters.reserve([sliding("rpm", 1, 3)], now_ms=60_005)
    assert isinstance(denied, Denied)
    assert denied.retry_after_ms == 5


async def test_sliding_settle_adjusts_tokens(counters: Counters) -> None:
    tpm = sliding("tpm", 500, 1_000)
    r = await granted(counters, [tpm], 0)
    assert isinstance(await counters.reserve([sliding("tpm", 600, 1_000)], now_ms=1), Denied)
    assert await counters.settle(r, [100], now_ms=2) == [100]
    r2 = await granted(counters, [sliding("tpm", 900, 1_000)], 3)
    assert r2.levels == [1_000]
    # Several entries must leave before 300 tokens fit: retry when the second one goes.
    denied = await counters.reserve([sliding("tpm", 300, 1_000)], now_ms=4)
    assert isinstance(denied, Denied)
    assert denied.retry_after_ms == 3 + MIN - 4


@pytest.mark.parametrize("seed", [1, 2])
async def test_sliding_window_never_admits_more_than_n_in_any_window(
    counters: Counters, seed: int
) -> None:
    rng = random.Random(seed)
    limit, window = 20, 1_000
    times = sorted(rng.randrange(0, 5_000) for _ in range(400))
    admitted: list[int] = []
    for t in times:
        r = await counters.reserve([sliding("w", 1, limit, window)], now_ms=t)
        if isinstance(r, Reservation):
            admitted.append(t)
    # Reference: exact sliding window over the admitted instants.
    for i, t in enumerate(admitted):
        in_window = [a for a in admitted[: i + 1] if a > t - window]
        assert len(in_window) <= limit
    # And it is not merely conservative: a request is refused only when the window is full.
    refused = [t for t in times if t not in admitted]
    for t in refused:
        assert len([a for a in admitted if t - window < a <= t]) >= limit


async def test_concurrent_reservations_admit_exactly_the_limit(counters: Counters) -> None:
    async def one() -> bool:
        r = await counters.reserve([sliding("rpm", 1, 100), fixed("usd", 7, 1_000)], now_ms=5)
        return isinstance(r, Reservation)

    results = await asyncio.gather(*(one() for _ in range(1_000)))
    # usd admits 142 of 7, rpm admits 100: the tighter one wins and nothing overshoots.
    assert sum(results) == 100
    levels = await counters.levels([sliding("rpm", 1, 100), fixed("usd", 7, 1_000)], now_ms=6)
    assert levels == [Level(100, 0), Level(0, 700)]


async def test_settle_twice_and_bad_input_are_typed_errors(counters: Counters) -> None:
    r = await granted(counters, [fixed("a", 1, 10), fixed("b", 1, 10)], 0)
    with pytest.raises(InvalidRequest, match="one actual amount per charge"):
        await counters.settle(r, [1], now_ms=1)
    with pytest.raises(InvalidRequest, match=">= 0"):
        await counters.settle(r, [1, -1], now_ms=1)
    await counters.settle(r, [1, 1], now_ms=1)
    with pytest.raises(InvalidRequest, match="already settled"):
        await counters.settle(r, [1, 1], now_ms=2)
    with pytest.raises(InvalidRequest, match="twice"):
        await counters.reserve([fixed("a", 1, 10), fixed("a", 1, 10)], now_ms=3)
    with pytest.raises(InvalidRequest):
        Charge("x", -1, 10)
    with pytest.raises(InvalidRequest):
        Charge("", 1, 10)


async def test_seed_only_sets_a_missing_counter(counters: Counters) -> None:
    assert await counters.seed("restored", 70, expire_at_ms=None)
    assert not await counters.seed("restored", 5, expire_at_ms=None)
    assert isinstance(await counters.reserve([fixed("restored", 40, 100)], now_ms=0), Denied)
    r = await granted(counters, [fixed("restored", 30, 100)], 0)
    assert await counters.settle(r, [30], now_ms=1) == [100]


async def test_large_amounts_stay_exact(counters: Counters) -> None:
    big = 12_345_678_901_234  # $12.3M in micro-dollars: beyond a %.14g float string
    r = await granted(counters, [fixed("big", big, big + 1)], 0)
    assert r.levels == [big]
    assert await counters.settle(r, [big - 1], now_ms=1) == [big - 1]
    assert await counters.levels([fixed("big", 0, 1)], now_ms=2) == [Level(big - 1, 0)]


async def test_empty_reservation(counters: Counters) -> None:
    r = await granted(counters, [], 0)
    assert await counters.settle(r, [], now_ms=1) == []
    assert await counters.levels([], now_ms=1) == []
    assert await counters.ping()


async def test_retry_after_never_exceeds_the_window(counters: Counters) -> None:
    # Concurrent requests may reserve with slightly older clocks than their neighbours.
    await granted(counters, [sliding("rpm", 1, 1, 1_000)], 500)
    denied = await counters.reserve([sliding("rpm", 1, 1, 1_000)], now_ms=400)
    assert isinstance(denied, Denied)
    assert denied.retry_after_ms == 1_000


async def test_memory_settled_reservations_leave_nothing_behind() -> None:
    # A settled hold is gone at once, not kept until its expiry (900 s by default): a
    # busy worker's memory must not grow with the requests of the last 15 minutes.
    import tracemalloc

    c = MemoryCounters()
    charges = [fixed("k", 5, 10**12), fixed("team", 5, 10**12)]
    for now in range(1_000):  # warm-up: the counters and their dicts exist
        await c.settle(await granted(c, charges, now), [1, 1], now_ms=now)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for now in range(1_000, 21_000):
            await c.settle(await granted(c, charges, now), [1, 1], now_ms=now)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown  # keeping every hold until its expiry grew 4.5 MB here
    assert await c.levels(charges, now_ms=21_000) == [Level(21_000, 0), Level(21_000, 0)]


async def test_settling_a_sliding_entry_after_many_older_ones_left_the_window(
    counters: Counters,
) -> None:
    # Thousands of entries leave the window (the memory log drops its purged front)
    # while one reservation is still open: its settle still finds and adjusts it.
    for now in range(2_000):
        await granted(counters, [sliding("tpm", 1, 10**6, 1_000)], now)
    r = await granted(counters, [sliding("tpm", 50, 10**6, 1_000)], 2_000)
    levels = await counters.levels([sliding("tpm", 0, 10**6, 1_000)], now_ms=2_900)
    assert levels == [Level(99 + 50)]  # 1901..1999 and the open one
    assert await counters.settle(r, [8], now_ms=2_950) == [8 + 49]  # 1951..1999 left
    levels = await counters.levels([sliding("tpm", 0, 10**6, 1_000)], now_ms=3_000)
    assert levels == [Level(0)]
    denied = await counters.reserve([sliding("tpm", 2, 1, 1_000)], now_ms=3_001)
    assert isinstance(denied, Denied) and denied.retry_after_ms == -1


async def test_memory_sliding_log_keeps_16_bytes_an_entry() -> None:
    # A worker keeps one window (a minute) of every rate limit's entries: at thousands
    # of requests a second that must stay small (a tuple + dict entry each was ~300 B).
    import tracemalloc

    c = MemoryCounters()
    charges = [sliding("rpm", 1, 10**12), sliding("tpm", 40, 10**12)]
    for now in range(1_000):
        await c.settle(await granted(c, charges, now), [1, 30], now_ms=now)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for now in range(1_000, 21_000):  # all inside the window
            await c.settle(await granted(c, charges, now), [1, 30], now_ms=now)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown / 20_000 < 2 * 16 * 1.5, grown  # two logs, array growth slack
    assert await c.levels(charges, now_ms=21_000) == [Level(21_000), Level(30 * 21_000)]
