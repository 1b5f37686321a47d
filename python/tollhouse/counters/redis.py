"""Counters in Redis, shared by every gateway process and replica.

Each operation is one Lua script call (EVALSHA: one round trip), so a multi-key
reservation is atomic across replicas exactly as ``MemoryCounters`` is within one
process.  Connection errors and timeouts become ``CountersUnavailable``; the guard
layer then follows ``fail_mode``.  The client is built lazily on first use, so a Redis
that is down at start-up or comes back later needs no restart.

All keys of one reservation must live on one Redis node (no Redis Cluster slot
spreading); a single primary (with replicas/Sentinel for HA) is the supported shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tollhouse.counters import _lua
from tollhouse.counters.base import (
    DEFAULT_HOLD_MS,
    Charge,
    CountersUnavailable,
    Denied,
    Level,
    Reservation,
    check_actuals,
    check_charges,
    new_reservation_id,
)
from tollhouse.events.signing import mask_url

log = logging.getLogger("tollhouse.counters")

DEFAULT_PREFIX = "tollhouse:c:"


def _keys(prefix: str, charges: Sequence[Charge]) -> list[str]:
    keys: list[str] = []
    for c in charges:
        k = prefix + c.key
        keys.append(k)
        keys.append(k + ":x")
    return keys


class RedisCounters:
    """The ``counters: redis://...`` backend."""

    shared_across_processes = True

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisCounters needs a url or a client")
            # One retry without backoff: the reserve script is idempotent per rid, and a
            # fast failure lets fail_mode decide instead of stalling the request.
            # A bounded pool that queues: a burst of concurrent requests waits briefly
            # for a connection instead of opening thousands of them.
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=max(timeout, 5.0),
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
                health_check_interval=5,
            )
            client = Redis.from_pool(pool)  # the client owns (and closes) the pool
        self._redis = client
        self._prefix = prefix
        self._where = mask_url(url) if url else "redis"
        self._reserve = client.register_script(_lua.RESERVE)
        self._settle = client.register_script(_lua.SETTLE)
        self._levels = client.register_script(_lua.LEVELS)
        self._seed = client.register_script(_lua.SEED)

    @property
    def client(self) -> Redis:
        return self._redis

    async def _call(self, script: Any, keys: list[str], args: list[int | str]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise CountersUnavailable(
                f"counters store {self._where} unreachable: {type(exc).__name__}"
            ) from None
        except RedisError as exc:
            log.error("counters script failed: %s", exc)
            raise CountersUnavailable(f"counters store {self._where} failed") from None

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now_ms: int,
        hold_ms: int = DEFAULT_HOLD_MS,
        rid: str | None = None,
    ) -> Reservation | Denied:
        charges = check_charges(charges)
        rid = rid or new_reservation_id()
        if not charges:
            return Reservation(rid, charges, [], [], now_ms)
        args: list[int | str] = [now_ms, hold_ms, rid]
        for c in charges:
            args += [c.amount, c.limit, c.window_ms, c.expire_at_ms or 0]
        out = await self._call(self._reserve, _keys(self._prefix, charges), args)
        if int(out[0]) == 0:
            index, level, retry = int(out[1]), int(out[2]), int(out[3])
            c = charges[index]
            return Denied(index, c.key, level, c.limit, None if retry == -2 else retry)
        n = len(charges)
        levels = [int(x) for x in out[1 : n + 1]]
        resets = [int(x) for x in out[n + 1 : 2 * n + 1]]
        return Reservation(rid, charges, levels, resets, now_ms)

    async def settle(
        self, reservation: Reservation, actuals: Sequence[int] | None, *, now_ms: int
    ) -> list[int]:
        amounts = check_actuals(reservation, actuals)
        if not reservation.charges:
            reservation.done = True
            return []
        args: list[int | str] = [now_ms, reservation.id]
        for c, actual in zip(reservation.charges, amounts, strict=True):
            args += [actual, c.window_ms, c.expire_at_ms or 0]
        out = await self._call(self._settle, _keys(self._prefix, reservation.charges), args)
        reservation.done = True
        return [int(x) for x in out]

    async def levels(self, charges: Sequence[Charge], *, now_ms: int) -> list[Level]:
        if not charges:
            return []
        args: list[int | str] = [now_ms, *(c.window_ms for c in charges)]
        out = await self._call(self._levels, _keys(self._prefix, charges), args)
        return [Level(int(out[2 * i]), int(out[2 * i + 1])) for i in range(len(charges))]

    async def seed(self, key: str, used: int, *, expire_at_ms: int | None) -> bool:
        k = self._prefix + key
        out = await self._call(self._seed, [k, k + ":x"], [used, expire_at_ms or 0])
        return bool(int(out))

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()

    async def held_total(self) -> int:
        """Sum of unexpired holds over every fixed counter (tests: nothing leaked)."""
        total = 0
        async for key in self._redis.scan_iter(match=self._prefix + "*", count=500):
            if key.endswith(b":x"):
                continue
            if await self._redis.type(key) == b"hash":
                total += int(await self._redis.hget(key, "h") or 0)
        return total
