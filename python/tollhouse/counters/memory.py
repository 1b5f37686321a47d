"""In-process counters: the default backend, exact within one process.

Every operation runs under one lock without awaiting, so a reservation is atomic
against every other one in the process.  The counts are per process: with
``serve --workers N > 1`` the gateway must use Redis instead (``shared_across_processes``
is False and the server refuses to start rather than multiply the limits).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from tollhouse.counters.base import (
    DEFAULT_HOLD_MS,
    Charge,
    Denied,
    Level,
    Reservation,
    check_actuals,
    check_charges,
    new_reservation_id,
)
from tollhouse.errors import InvalidRequest

_SWEEP_EVERY = 4096
_COMPACT_AT = 1024
_MAX_AMOUNT = (1 << 63) - 1


@dataclass(slots=True)
class _Fixed:
    """A fixed counter: what was settled (``used``) plus the holds still in flight.

    ``holds`` maps a reservation id to its (amount, expiry); a settle removes its hold,
    so the dict only ever holds requests in flight.  ``next_expiry`` is the earliest
    expiry among them: a purge scans the holds only once one can have expired (a
    worker that never settled), never per request."""

    used: int = 0
    held: int = 0
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)
    next_expiry: int | None = None
    expire_at: int | None = None

    def hold(self, rid: str, amount: int, expiry: int) -> None:
        self.holds[rid] = (amount, expiry)
        self.held += amount
        if self.next_expiry is None or expiry < self.next_expiry:
            self.next_expiry = expiry

    def release(self, rid: str) -> None:
        hold = self.holds.pop(rid, None)
        if hold is not None:
            self.held -= hold[0]
            if not self.holds:
                self.next_expiry = None

    def purge(self, now: int) -> None:
        if self.next_expiry is None or self.next_expiry > now:
            return
        soonest: int | None = None
        for rid, (amount, expiry) in list(self.holds.items()):
            if expiry <= now:
                del self.holds[rid]
                self.held -= amount
            elif soonest is None or expiry < soonest:
                soonest = expiry
        self.next_expiry = soonest

    def stale(self, now: int) -> bool:
        return self.expire_at is not None and self.expire_at <= now and not self.holds


@dataclass(slots=True)
class _Sliding:
    """A sliding-window log: each reservation's time and amount, oldest first, in two
    int64 arrays (16 bytes per entry; a busy worker keeps a minute of them).  ``head``
    is the oldest live entry; entry ``i`` of the log has the stable position
    ``base + i``, which a reservation keeps to settle its amount."""

    window: int
    total: int = 0
    ts: array[int] = field(default_factory=lambda: array("q"))
    amt: array[int] = field(default_factory=lambda: array("q"))
    head: int = 0
    base: int = 0

    def purge(self, now: int) -> None:
        cutoff = now - self.window
        ts, amt, head, end = self.ts, self.amt, self.head, len(self.ts)
        while head < end and ts[head] <= cutoff:
            self.total -= amt[head]
            head += 1
        if head > _COMPACT_AT and head * 2 > end:  # drop the purged front, amortised
            del ts[:head]
            del amt[:head]
            self.base += head
            head = 0
        self.head = head

    def add(self, now: int, amount: int) -> int:
        """Log ``amount`` at ``now``; its position."""
        self.ts.append(now)
        self.amt.append(amount)
        self.total += amount
        return self.base + len(self.ts) - 1

    def settle(self, position: int, actual: int) -> None:
        """Replace the amount logged at ``position`` (nothing once it left the window)."""
        i = position - self.base
        if self.head <= i < len(self.amt):
            self.total += actual - self.amt[i]
            self.amt[i] = actual

    def retry_after(self, amount: int, limit: int, now: int) -> int:
        if amount > limit:
            return -1
        excess = self.total + amount - limit
        freed = 0
        ts, amt = self.ts, self.amt
        for i in range(self.head, len(ts)):
            freed += amt[i]
            if freed >= excess:
                return min(self.window, max(1, ts[i] + self.window - now))
        return 1

    def reset(self, now: int) -> int:
        return self.ts[self.head] + self.window - now if self.head < len(self.ts) else 0

    def stale(self, now: int) -> bool:
        return self.head >= len(self.ts)


def _check_logged(amount: int) -> None:
    if amount > _MAX_AMOUNT:
        raise InvalidRequest(f"a sliding-window amount must be below 2**63, got {amount}")


class MemoryCounters:
    """The ``counters: memory`` backend."""

    shared_across_processes = False

    def __init__(self) -> None:
        self._fixed: dict[str, _Fixed] = {}
        self._sliding: dict[str, _Sliding] = {}
        # Reservations not settled yet: (time, per charge (log, position) or None).
        self._logged: dict[str, tuple[int, list[tuple[_Sliding, int] | None]]] = {}
        self._longest = 0  # the longest sliding window seen (ms)
        self._lock = threading.Lock()
        self._ops = 0

    def _get_fixed(self, c: Charge, now: int) -> _Fixed:
        f = self._fixed.get(c.key)
        if f is None:
            f = self._fixed[c.key] = _Fixed(expire_at=c.expire_at_ms)
        elif f.next_expiry is not None and f.next_expiry <= now:
            f.purge(now)
        return f

    def _get_sliding(self, c: Charge, now: int) -> _Sliding:
        s = self._sliding.get(c.key)
        if s is None or s.window != c.window_ms:
            s = self._sliding[c.key] = _Sliding(window=c.window_ms)
            self._longest = max(self._longest, c.window_ms)
        elif s.head < len(s.ts) and s.ts[s.head] <= now - s.window:
            s.purge(now)
        return s

    def _tick(self, now: int) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY:
            return
        for f in self._fixed.values():
            f.purge(now)
        for s in self._sliding.values():
            s.purge(now)
        for f_key in [k for k, f in self._fixed.items() if f.stale(now)]:
            del self._fixed[f_key]
        for s_key in [k for k, s in self._sliding.items() if s.stale(now)]:
            del self._sliding[s_key]
        # A reservation never settled: once its entries left every window, forget it.
        cutoff = now - self._longest
        for rid in [r for r, (t, _) in self._logged.items() if t <= cutoff]:
            del self._logged[rid]

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
        return self._reserve(charges, now_ms, hold_ms, rid)

    def _reserve(
        self, charges: tuple[Charge, ...], now_ms: int, hold_ms: int, rid: str
    ) -> Reservation | Denied:
        with self._lock:
            self._tick(now_ms)
            states: list[_Fixed | _Sliding] = []
            for i, c in enumerate(charges):
                if c.window_ms:
                    _check_logged(c.amount)
                    s = self._get_sliding(c, now_ms)
                    if s.total + c.amount > c.limit:
                        retry: int | None = s.retry_after(c.amount, c.limit, now_ms)
                        return Denied(i, c.key, s.total, c.limit, retry)
                    states.append(s)
                else:
                    f = self._get_fixed(c, now_ms)
                    if f.used + f.held + c.amount > c.limit:
                        retry = -1 if c.amount > c.limit else None
                        return Denied(i, c.key, f.used + f.held, c.limit, retry)
                    states.append(f)
            levels: list[int] = []
            resets: list[int] = []
            expiry = now_ms + hold_ms
            # Per charge: (log, position) of a sliding one, None for a fixed one.
            logged: list[tuple[_Sliding, int] | None] = []
            any_logged = False
            for c, st in zip(charges, states, strict=True):
                if isinstance(st, _Sliding):
                    logged.append((st, st.add(now_ms, c.amount)))
                    any_logged = True
                    levels.append(st.total)
                    resets.append(st.ts[st.head] + st.window - now_ms)
                else:
                    st.hold(rid, c.amount, expiry)
                    if c.expire_at_ms is not None and (
                        st.expire_at is None or c.expire_at_ms > st.expire_at
                    ):
                        st.expire_at = c.expire_at_ms
                    logged.append(None)
                    levels.append(st.used + st.held)
                    resets.append(0)
            if any_logged:
                self._logged[rid] = (now_ms, logged)
        return Reservation(rid, charges, levels, resets, now_ms)

    async def settle(
        self, reservation: Reservation, actuals: Sequence[int] | None, *, now_ms: int
    ) -> list[int]:
        amounts = check_actuals(reservation, actuals)
        for c, actual in zip(reservation.charges, amounts, strict=True):
            if c.window_ms:
                _check_logged(actual)
        reservation.done = True
        rid = reservation.id
        out: list[int] = []
        with self._lock:
            found = self._logged.pop(rid, None)
            logged = found[1] if found is not None else None
            for i, (c, actual) in enumerate(zip(reservation.charges, amounts, strict=True)):
                if c.window_ms:
                    s = self._get_sliding(c, now_ms)
                    entry = logged[i] if logged is not None else None
                    if entry is not None and entry[0] is s:  # the same log (not replaced)
                        s.settle(entry[1], actual)
                    out.append(s.total)
                else:
                    f = self._get_fixed(c, now_ms)
                    f.release(rid)
                    f.used += actual
                    out.append(f.used)
        return out

    async def levels(self, charges: Sequence[Charge], *, now_ms: int) -> list[Level]:
        out: list[Level] = []
        with self._lock:
            for c in charges:
                if c.window_ms:
                    s = self._sliding.get(c.key)
                    if s is None:
                        out.append(Level())
                    else:
                        s.purge(now_ms)
                        out.append(Level(used=s.total))
                else:
                    f = self._fixed.get(c.key)
                    if f is None:
                        out.append(Level())
                    else:
                        f.purge(now_ms)
                        out.append(Level(used=f.used, held=f.held))
        return out

    async def seed(self, key: str, used: int, *, expire_at_ms: int | None) -> bool:
        with self._lock:
            if key in self._fixed:
                return False
            self._fixed[key] = _Fixed(used=used, expire_at=expire_at_ms)
            return True

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def held_total(self) -> int:
        """Sum of unexpired holds over every fixed counter (tests: nothing leaked)."""
        with self._lock:
            return sum(f.held for f in self._fixed.values())
