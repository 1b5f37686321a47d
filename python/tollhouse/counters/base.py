"""Atomic multi-key reserve / settle / release: the contract both backends implement.

A request reserves one ``Charge`` per limit that applies (a key's daily USD budget, its
team's monthly budget, the key's RPM and TPM, ...).  The reservation is all-or-nothing:
either every counter has room and every one is charged, or none is touched and the
answer names the first counter that refused.  Settling replaces the reserved amounts by
the true ones; releasing is settling to zero.

Two kinds of counter:

* **fixed** (``window_ms == 0``): an accumulating total for one window instance (the
  window id is part of the key, e.g. ``budget:key:ab12:d:2026-11-23``).  It holds
  ``used`` (settled) and ``held`` (reserved, unsettled).  A hold that is never settled
  (a crashed worker) expires after ``hold_ms`` and is released by the next operation on
  that counter.  A late settle still charges ``used``: spend that happened is counted.
* **sliding** (``window_ms > 0``): an exact sliding-window log.  Each admission is an
  entry ``(time, amount)``; the level is the sum of entries newer than
  ``now - window_ms``, so a limit of N per minute admits exactly N in any 60 s, never 2N
  across a window edge.  Settling adjusts the entry's amount in place.

Times are integer milliseconds supplied by the caller (an injectable clock), amounts
are integers (micro-dollars, tokens or requests).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tollhouse.errors import InvalidRequest, Unavailable

DEFAULT_HOLD_MS = 15 * 60 * 1000  # longer than the longest upstream call (total_timeout)


class CountersUnavailable(Unavailable):
    """The shared counter store (Redis) cannot be reached; ``fail_mode`` decides."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One counter touched by a reservation.

    ``expire_at_ms`` is when the counter itself may be forgotten (the end of its window
    plus a grace period); ``None`` keeps it (a budget with no reset).  Sliding counters
    expire on their own after ``2 * window_ms`` without writes."""

    key: str
    amount: int
    limit: int
    window_ms: int = 0
    expire_at_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.key or "\n" in self.key:
            raise InvalidRequest(f"counter key must be a non-empty single line: {self.key!r}")
        if self.amount < 0 or self.limit < 0 or self.window_ms < 0:
            raise InvalidRequest(f"counter {self.key}: amount, limit and window must be >= 0")

    @property
    def sliding(self) -> bool:
        return self.window_ms > 0


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a reservation was refused: the first counter without room.

    ``retry_after_ms`` is when room frees up on a sliding counter (None for a fixed
    counter: its window end is known to the caller; -1 when the amount alone exceeds the
    limit and waiting will never help)."""

    index: int
    key: str
    level: int
    limit: int
    retry_after_ms: int | None


@dataclass(slots=True)
class Reservation:
    """A granted reservation.  ``levels[i]`` is counter i's level after the reservation
    (used + held for fixed counters, the window sum for sliding ones); ``reset_ms[i]`` is,
    for sliding counters, when the oldest entry leaves the window (0 for fixed)."""

    id: str
    charges: tuple[Charge, ...]
    levels: list[int]
    reset_ms: list[int]
    now_ms: int
    done: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class Level:
    """A counter as read for reporting: ``used`` (settled) and ``held`` (reserved)."""

    used: int = 0
    held: int = 0

    @property
    def total(self) -> int:
        return self.used + self.held


def new_reservation_id() -> str:
    return secrets.token_hex(8)


def check_charges(charges: Sequence[Charge]) -> tuple[Charge, ...]:
    if len({c.key for c in charges}) != len(charges):
        seen: set[str] = set()
        for c in charges:
            if c.key in seen:
                raise InvalidRequest(f"counter {c.key} appears twice in one reservation")
            seen.add(c.key)
    return tuple(charges)


def check_actuals(reservation: Reservation, actuals: Sequence[int] | None) -> list[int]:
    if reservation.done:
        raise InvalidRequest(f"reservation {reservation.id} was already settled")
    if actuals is None:
        return [0] * len(reservation.charges)
    if len(actuals) != len(reservation.charges):
        raise InvalidRequest("settle needs one actual amount per charge")
    if any(a < 0 for a in actuals):
        raise InvalidRequest("actual amounts must be >= 0")
    return list(actuals)


class Counters(Protocol):
    """The counter backend.  ``shared_across_processes`` says whether two gateway
    processes using it see one count (Redis) or one each (memory)."""

    shared_across_processes: bool

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now_ms: int,
        hold_ms: int = DEFAULT_HOLD_MS,
        rid: str | None = None,
    ) -> Reservation | Denied:
        """All-or-nothing: charge every counter, or none and say which one refused."""
        ...

    async def settle(
        self, reservation: Reservation, actuals: Sequence[int] | None, *, now_ms: int
    ) -> list[int]:
        """Replace reserved amounts by ``actuals`` (None = release all); returns each
        counter's settled ``used`` (fixed) or window sum (sliding) afterwards."""
        ...

    async def levels(self, charges: Sequence[Charge], *, now_ms: int) -> list[Level]:
        """Current levels, read-only except for expiring old holds and entries."""
        ...

    async def seed(self, key: str, used: int, *, expire_at_ms: int | None) -> bool:
        """Set a fixed counter's ``used`` if the counter does not exist yet (restoring
        spend from the store after a restart).  True if it was set."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
