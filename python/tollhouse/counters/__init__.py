"""Atomic counters and reservations: ``memory`` (default) or ``redis://...``."""

from __future__ import annotations

from tollhouse.counters.base import (
    DEFAULT_HOLD_MS,
    Charge,
    Counters,
    CountersUnavailable,
    Denied,
    Level,
    Reservation,
)
from tollhouse.counters.memory import MemoryCounters
from tollhouse.errors import ConfigError


def open_counters(url: str) -> Counters:
    """``memory`` or a Redis URL (as validated by ``config.py``)."""
    if url == "memory":
        return MemoryCounters()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from tollhouse.counters.redis import RedisCounters

        return RedisCounters(url)
    raise ConfigError("counters: expected 'memory' or redis://...")


__all__ = [
    "DEFAULT_HOLD_MS",
    "Charge",
    "Counters",
    "CountersUnavailable",
    "Denied",
    "Level",
    "MemoryCounters",
    "Reservation",
    "open_counters",
]
