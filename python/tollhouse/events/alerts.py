"""Budget alert de-duplication: ``budget.alert`` once per (scope, window) at >= 80 % and
``budget.exceeded`` once at >= 100 %.

The "once" lives in a gate: ``MemoryOnceGate`` for one process, ``RedisOnceGate`` (SET NX
with a TTL) so it holds across replicas.  Crossing both thresholds at once fires both,
alert first, so a receiver subscribed to only one of them still hears about it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tollhouse.events.types import BUDGET_ALERT, BUDGET_EXCEEDED, Event, usd

if TYPE_CHECKING:
    from redis.asyncio import Redis

ALERT_RATIO_BP = 8_000  # basis points: 80 %, kept integral like the money
FULL_BP = 10_000
DEFAULT_TTL_S = 35 * 24 * 3600  # longer than the longest window (a month)


class OnceGate(Protocol):
    async def first(self, key: str) -> bool:
        """True exactly once per key (until it expires)."""
        ...


class MemoryOnceGate:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._seen: dict[str, None] = {}
        self._max = max_keys
        self._lock = threading.Lock()

    async def first(self, key: str) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            if len(self._seen) >= self._max:
                # Insertion order: the oldest windows are the ones no longer written to.
                del self._seen[next(iter(self._seen))]
            self._seen[key] = None
            return True


class RedisOnceGate:
    def __init__(
        self, redis: Redis, *, prefix: str = "tollhouse:once:", ttl_s: int = DEFAULT_TTL_S
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s

    async def first(self, key: str) -> bool:
        return bool(await self._redis.set(self._prefix + key, b"1", nx=True, ex=self._ttl))


class OnceTracker:
    """Turns a budget observation into the events that are due, each exactly once.

    ``window_id`` names the window instance (``2026-02-18`` for a daily budget), so a new
    window starts a new pair of alerts.  Amounts are integer micro-dollars."""

    def __init__(
        self,
        gate: OnceGate | None = None,
        *,
        alert_bp: int = ALERT_RATIO_BP,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        if not 0 < alert_bp < FULL_BP:
            raise ValueError("alert_bp must be between 0 and 10000 exclusive")
        self._gate: OnceGate = gate or MemoryOnceGate()
        self._alert_bp = alert_bp
        self._emit = emit

    @classmethod
    def redis(
        cls,
        redis: Redis,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        alert_bp: int = ALERT_RATIO_BP,
        emit: Callable[[Event], None] | None = None,
    ) -> OnceTracker:
        """A tracker whose "once" holds across replicas sharing ``redis``."""
        return cls(RedisOnceGate(redis, ttl_s=ttl_s), alert_bp=alert_bp, emit=emit)

    async def observe(
        self,
        scope: str,
        window_id: str,
        spent_micros: int,
        limit_micros: int,
        *,
        period: str | None = "daily",
        team_id: str | None = None,
        key_name: str | None = None,
        workspace_id: str | None = None,
    ) -> list[Event]:
        """The events newly due for this observation (also passed to ``emit``)."""
        if limit_micros <= 0:
            return []
        due: list[str] = []
        # Integer comparison: spent / limit >= bp / 10000 without floats.
        if spent_micros * FULL_BP >= limit_micros * self._alert_bp:
            due.append(BUDGET_ALERT)
        if spent_micros >= limit_micros:
            due.append(BUDGET_EXCEEDED)
        events: list[Event] = []
        for kind in due:
            if not await self._gate.first(f"{kind}|{scope}|{window_id}"):
                continue
            data: dict[str, object] = {
                "scope": scope,
                "window": window_id,
                "currentSpend": usd(spent_micros),
                "limit": usd(limit_micros),
                "percentUsed": round(spent_micros * 100 / limit_micros, 1),
            }
            if period is not None:
                data["period"] = period
            if period == "daily":
                data["dailyLimit"] = usd(limit_micros)
            event = Event(
                type=kind, data=data, team_id=team_id, key_name=key_name, workspace_id=workspace_id
            )
            events.append(event)
            if self._emit is not None:
                self._emit(event)
        return events
