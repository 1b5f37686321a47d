"""Loop detection: a normalised fingerprint of what an agent asks, and cost spikes.

An agent stuck in a loop sends the same last message again and again, with small
differences (numbers, whitespace, case).  The fingerprint hashes the last message's
text lower-cased, with every digit folded to ``0`` and whitespace runs collapsed (str
methods implemented in C; no Python loop over the text; a long message by its first and
last 2 KB), plus the model.  The session
stage counts fingerprints in a sliding window of the counters backend.

A cost spike is a request costing more than ``spike_factor`` times the session's
average so far (after ``spike_min_requests`` requests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tollhouse.errors import ConfigError
from tollhouse.guard.redaction import Leaf, leaf_text, message_groups

_FOLD: Final = bytes.maketrans(b"123456789\t\n\r\x0b\x0c", b"000000000     ")


@dataclass(frozen=True, slots=True)
class LoopConfig:
    window_ms: int = 60_000
    max_repeats: int = 5  # identical fingerprints allowed in the window; one more trips
    spike_factor: float = 10.0
    spike_min_requests: int = 3

    @classmethod
    def parse(cls, raw: Any) -> LoopConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("sessions.loop: expected a mapping")
        unknown = set(raw) - {"window_s", "max_repeats", "spike_factor", "spike_min_requests"}
        if unknown:
            raise ConfigError(f"sessions.loop: unknown field(s) {', '.join(sorted(unknown))}")
        d = cls()
        window = _num(raw, "window_s", d.window_ms / 1000)
        repeats = int(_num(raw, "max_repeats", d.max_repeats))
        factor = _num(raw, "spike_factor", d.spike_factor)
        minimum = int(_num(raw, "spike_min_requests", d.spike_min_requests))
        if window <= 0 or repeats < 1 or factor <= 1 or minimum < 1:
            raise ConfigError(
                "sessions.loop: window_s > 0, max_repeats >= 1, spike_factor > 1, "
                "spike_min_requests >= 1"
            )
        return cls(int(window * 1000), repeats, factor, minimum)


def _num(raw: Mapping[str, Any], name: str, default: float) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"sessions.loop.{name}: expected a number")
    return float(value)


_EDGE: Final = 2048  # long texts are fingerprinted by their head and tail


def normalise(text: str) -> bytes:
    """Lower-cased (ASCII), digits folded to ``0``, whitespace runs collapsed; on bytes,
    where each step is one C pass (``str.translate`` looks every character up in a dict)."""
    if len(text) > 2 * _EDGE:
        text = text[:_EDGE] + " " + text[-_EDGE:]
    raw = text.encode("utf-8", "surrogatepass").lower().translate(_FOLD)
    while b"  " in raw:  # each pass halves every run of spaces
        raw = raw.replace(b"  ", b" ")
    return raw.strip(b" ")


def fingerprint(body: Mapping[str, Any], model: str, groups: list[list[Leaf]] | None = None) -> str:
    """16 hex digits naming what the request asks (its last message, normalised).
    ``groups``: the body's ``message_groups`` when the caller has them already."""
    if groups is None:
        groups = message_groups(body)
    last = groups[-1] if groups else []
    h = hashlib.blake2b(model.encode("utf-8", "surrogatepass"), digest_size=8)
    for leaf in last:
        h.update(b"\x00")
        h.update(normalise(leaf_text(leaf)))
    return h.hexdigest()


def is_spike(cost: int, total_before: int, count_before: int, config: LoopConfig) -> bool:
    """Whether ``cost`` is a spike against the session's average of its earlier requests."""
    if count_before < config.spike_min_requests or total_before <= 0:
        return False
    return cost * count_before > config.spike_factor * total_before
