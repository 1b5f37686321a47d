"""Session circuit breakers, kept in the counters backend so they hold across replicas.

A session is ``(key, x-gate-session-id)``.  Each request reserves, in one atomic
``Counters.reserve``: the session's *dead* flag (limit 0: refused once set), one request
(``max_requests``), its cost and tokens so far (limits ``max_cost``/``max_tokens``,
checked against what earlier requests settled) and one repetition of its loop
fingerprint in a sliding window (``loop.max_repeats`` per ``loop.window_s``).  A refusal
trips the breaker: reserving the dead flag succeeds only while it is not set, so
however many replicas and parallel requests see the refusal, exactly one fires
``session.killed`` (or ``loop.detected``) and the session stays dead until ``ttl_s``.
After the response, the true cost and tokens are settled; crossing a limit, or a cost
spike, trips the breaker for the next request.

Config section ``sessions``::

    sessions:
      max_cost_usd: 5.0
      max_tokens: 200000
      max_duration_s: 3600
      max_requests: 500
      ttl_s: 86400
      loop: {window_s: 60, max_repeats: 5, spike_factor: 10, spike_min_requests: 3}
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tollhouse import native
from tollhouse.counters import Charge, Counters, CountersUnavailable, Denied, Reservation
from tollhouse.errors import ConfigError, SessionKilled
from tollhouse.events.types import LOOP_DETECTED, SESSION_KILLED
from tollhouse.guard.loops import LoopConfig, is_spike
from tollhouse.guard.presets import Preset

log = logging.getLogger("tollhouse.guard")

UNLIMITED: Final = 1 << 62
DEFAULT_TTL_MS: Final = 24 * 3600 * 1000
REASONS: Final = ("killed", "requests", "cost", "tokens", "duration", "loop", "cost_spike")
LOOP_REASONS: Final = frozenset({"loop", "cost_spike"})
_FIELDS: Final = (
    "max_cost_usd",
    "max_tokens",
    "max_duration_s",
    "max_requests",
    "ttl_s",
    "loop",
)

Emit = Callable[[str, dict[str, Any]], None]  # (event type, data)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_cost_micros: int | None = None
    max_tokens: int | None = None
    max_duration_ms: int | None = None
    max_requests: int | None = None
    ttl_ms: int = DEFAULT_TTL_MS
    loop: LoopConfig = field(default_factory=LoopConfig)

    @classmethod
    def parse(cls, raw: Any) -> SessionLimits:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("sessions: expected a mapping")
        unknown = set(raw) - set(_FIELDS)
        if unknown:
            raise ConfigError(f"sessions: unknown field(s) {', '.join(sorted(unknown))}")

        def positive(name: str) -> float | None:
            v = raw.get(name)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"sessions.{name}: expected a positive number")
            return float(v)

        cost = positive("max_cost_usd")
        tokens = positive("max_tokens")
        duration = positive("max_duration_s")
        requests = positive("max_requests")
        ttl = positive("ttl_s")
        return cls(
            native.usd_to_micros(cost) if cost is not None else None,
            int(tokens) if tokens is not None else None,
            int(duration * 1000) if duration is not None else None,
            int(requests) if requests is not None else None,
            int(ttl * 1000) if ttl is not None else DEFAULT_TTL_MS,
            LoopConfig.parse(raw.get("loop")),
        )

    def scaled(self, factor: float) -> SessionLimits:
        if factor == 1.0:
            return self

        def s(v: int | None) -> int | None:
            return max(1, int(v * factor)) if v is not None else None

        return SessionLimits(
            s(self.max_cost_micros),
            s(self.max_tokens),
            s(self.max_duration_ms),
            s(self.max_requests),
            self.ttl_ms,
            self.loop,
        )


@dataclass(slots=True)
class Ticket:
    """An admitted request of a session, settled after the response."""

    session_id: str
    prefix: str
    limits: SessionLimits
    reservation: Reservation
    preset: Preset
    tokens_index: int | None


@functools.lru_cache(maxsize=4096)  # an agent's session sends many requests
def session_prefix(key_hash: str, session_id: str) -> str:
    digest = hashlib.blake2b(f"{key_hash}\x00{session_id}".encode(), digest_size=12)
    return "session:" + digest.hexdigest()


class Sessions:
    def __init__(
        self,
        counters: Counters,
        limits: SessionLimits,
        *,
        fail_mode: str = "closed",
    ) -> None:
        self.counters = counters
        self.limits = limits
        self.fail_mode = fail_mode
        self._by_factor: dict[float, SessionLimits] = {}

    def limits_for(self, preset: Preset) -> SessionLimits:
        lim = self._by_factor.get(preset.session_factor)
        if lim is None:
            lim = self._by_factor[preset.session_factor] = self.limits.scaled(preset.session_factor)
        return lim

    async def admit(
        self,
        key_hash: str,
        session_id: str,
        preset: Preset,
        fingerprint: str | None,
        now_ms: int,
        notify: Emit,
    ) -> Ticket | None:
        """Reserve this request in its session; raises ``SessionKilled`` (429) when a
        breaker refuses (tripping it, exactly once) or the session is dead."""
        lim = self.limits_for(preset)
        prefix = session_prefix(key_hash, session_id)
        expire = now_ms + lim.ttl_ms
        charges = [
            Charge(prefix + ":dead", 0, 0, expire_at_ms=expire),
            Charge(prefix + ":requests", 1, lim.max_requests or UNLIMITED, expire_at_ms=expire),
            Charge(prefix + ":cost", 0, _below(lim.max_cost_micros), expire_at_ms=expire),
        ]
        reasons = ["killed", "requests", "cost"]
        tokens_index = None
        if lim.max_tokens is not None:
            tokens_index = len(charges)
            charges.append(Charge(prefix + ":tokens", 0, lim.max_tokens - 1, expire_at_ms=expire))
            reasons.append("tokens")
        if fingerprint is not None and preset.loop_detection:
            loop = lim.loop
            charges.append(
                Charge(f"{prefix}:fp:{fingerprint}", 1, loop.max_repeats, window_ms=loop.window_ms)
            )
            reasons.append("loop")
        try:
            if lim.max_duration_ms is not None:
                start_key = prefix + ":start"
                if not await self.counters.seed(start_key, now_ms, expire_at_ms=expire):
                    (level,) = await self.counters.levels(
                        [Charge(start_key, 0, UNLIMITED)], now_ms=now_ms
                    )
                    if now_ms - level.used > lim.max_duration_ms:
                        await self.trip(prefix, session_id, "duration", now_ms, lim, notify)
            got = await self.counters.reserve(charges, now_ms=now_ms)
        except CountersUnavailable:
            if self.fail_mode == "closed":
                raise
            log.warning("session %s not checked: counters unavailable (fail open)", prefix)
            return None
        if isinstance(got, Denied):
            reason = reasons[got.index]
            if reason == "killed":
                was = REASONS[got.level] if 0 < got.level < len(REASONS) else "a breaker"
                raise SessionKilled(f"session {session_id!r} was stopped earlier ({was})")
            await self.trip(prefix, session_id, reason, now_ms, lim, notify)
        assert isinstance(got, Reservation)  # noqa: S101 - Denied raised above
        return Ticket(session_id, prefix, lim, got, preset, tokens_index)

    async def trip(
        self,
        prefix: str,
        session_id: str,
        reason: str,
        now_ms: int,
        lim: SessionLimits,
        notify: Emit,
    ) -> None:
        """Mark the session dead; the first caller to do so fires the event.  Raises."""
        await self.kill(prefix, session_id, reason, now_ms, lim, notify)
        raise SessionKilled(f"session {session_id!r} stopped by its {reason} breaker")

    async def kill(
        self,
        prefix: str,
        session_id: str,
        reason: str,
        now_ms: int,
        lim: SessionLimits,
        notify: Emit,
    ) -> bool:
        # The flag's level is the reason's code; reserving it succeeds only while the
        # flag is zero, so exactly one caller (of any replica) gets here first.
        code = REASONS.index(reason)
        flag = Charge(prefix + ":dead", code, code, expire_at_ms=now_ms + lim.ttl_ms)
        got = await self.counters.reserve([flag], now_ms=now_ms)
        if isinstance(got, Denied):
            return False
        await self.counters.settle(got, [code], now_ms=got.now_ms)
        event = LOOP_DETECTED if reason in LOOP_REASONS else SESSION_KILLED
        notify(event, {"sessionId": session_id, "reason": reason})
        return True

    async def settle(
        self, ticket: Ticket, cost_micros: int, tokens: int, now_ms: int, notify: Emit
    ) -> None:
        """Charge the true cost and tokens; a crossed limit or a cost spike kills the
        session for its next request (the answer already went out)."""
        res = ticket.reservation
        actuals = [0, 1, cost_micros]
        if ticket.tokens_index is not None:
            actuals.append(tokens)
        actuals += [c.amount for c in res.charges[len(actuals) :]]
        cost_before, count_before = res.levels[2], res.levels[1] - 1
        try:
            levels = await self.counters.settle(res, actuals, now_ms=now_ms)
        except CountersUnavailable as exc:
            log.warning("session settle skipped: %s", exc.message)
            return
        lim = ticket.limits
        reason = None
        if lim.max_cost_micros is not None and levels[2] >= lim.max_cost_micros:
            reason = "cost"
        elif ticket.tokens_index is not None and lim.max_tokens is not None:
            if levels[ticket.tokens_index] >= lim.max_tokens:
                reason = "tokens"
        if reason is None and ticket.preset.loop_detection:
            if is_spike(cost_micros, cost_before, count_before, lim.loop):
                reason = "cost_spike"
        if reason is not None:
            await self.kill(ticket.prefix, ticket.session_id, reason, now_ms, lim, notify)


def _below(limit: int | None) -> int:
    """A counter limit that refuses once the settled total reached ``limit``."""
    return UNLIMITED if limit is None else max(0, limit - 1)
