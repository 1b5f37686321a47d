"""The loop fingerprint (what counts as "the same request") and the cost-spike rule."""

from __future__ import annotations

from tollhouse.guard.loops import LoopConfig, fingerprint, is_spike, normalise


def chat(*contents: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": c} for c in contents]}


def test_near_identical_requests_share_a_fingerprint() -> None:
    a = fingerprint(chat("earlier turn", "Retry step 3:  fetch   PAGE 12"), "m")
    b = fingerprint(chat("another history", "retry step 4: fetch page 97\n"), "m")
    assert a == b and len(a) == 16
    assert fingerprint(chat("retry step 3: fetch page 12"), "other-model") != a
    assert fingerprint(chat("retry step 3: fetch page twelve"), "m") != a
    assert normalise("  A1\tb22 ") == b"a0 b00"


def test_tool_calls_and_parts_count() -> None:
    one = {"messages": [{"role": "user", "content": [{"type": "text", "text": "call f(1)"}]}]}
    two = {"messages": [{"role": "user", "content": [{"type": "text", "text": "call f(2)"}]}]}
    assert fingerprint(one, "m") == fingerprint(two, "m")
    assert fingerprint({"messages": []}, "m") == fingerprint({}, "m")


def test_spike_rule() -> None:
    c = LoopConfig(spike_factor=10, spike_min_requests=3)
    assert not is_spike(10_000, 300, 2, c)  # too few requests to judge
    assert not is_spike(1000, 300, 3, c)  # exactly 10x the average is not above it
    assert is_spike(1001, 300, 3, c)
    assert not is_spike(5, 0, 10, c)
