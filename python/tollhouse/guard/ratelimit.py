"""Requests- and tokens-per-minute limits on an exact sliding window.

A limit of N per minute is a sliding counter over the last 60 s: it admits exactly N in
any 60 s span, never 2N across a window edge (a fixed per-minute bucket would).  The
``x-ratelimit-*`` headers follow OpenAI's names: ``limit``, ``remaining`` and ``reset``
(time until the oldest admission leaves the window, e.g. ``6.5s``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from tollhouse.counters import Charge

MINUTE_MS: Final = 60_000
RateKind = Literal["requests", "tokens"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests (or tokens) per ``window_ms`` for one scope."""

    scope: str
    id: str
    kind: RateKind
    limit: int
    window_ms: int = MINUTE_MS

    @property
    def label(self) -> str:
        return f"{self.scope}:{self.id}"

    def counter_key(self) -> str:
        return f"{'r' if self.kind == 'requests' else 't'}:{self.scope}:{self.id}"

    def charge(self, amount: int) -> Charge:
        return Charge(self.counter_key(), amount, self.limit, window_ms=self.window_ms)


def format_reset(ms: int) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``250ms``."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"


def headers(kind: RateKind, limit: int, level: int, reset_ms: int) -> list[tuple[bytes, bytes]]:
    """The three ``x-ratelimit-*-<kind>`` headers for one limit."""
    return [
        (b"x-ratelimit-limit-" + kind.encode(), str(limit).encode()),
        (b"x-ratelimit-remaining-" + kind.encode(), str(max(0, limit - level)).encode()),
        (b"x-ratelimit-reset-" + kind.encode(), format_reset(reset_ms).encode()),
    ]
