"""Circuit breaker transitions and numbers (in process, fake clock)."""

from __future__ import annotations

from tollhouse.routing.breaker import Breaker, BreakerBoard, BreakerConfig


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def breaker(clock: Clock, **kw: float) -> Breaker:
    cfg = BreakerConfig(
        failures=int(kw.get("failures", 3)),
        error_rate=kw.get("error_rate", 0.5),
        min_requests=int(kw.get("min_requests", 4)),
        window_s=kw.get("window_s", 10.0),
        cooldown_s=kw.get("cooldown_s", 5.0),
        ewma_alpha=kw.get("ewma_alpha", 0.5),
    )
    return Breaker("p/m", cfg, clock)


def test_opens_after_consecutive_failures_then_probes_once_and_closes() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.failure("500")
    assert b.state == "closed"
    assert b.allow()
    b.failure("500")
    assert b.state == "open"
    assert not b.allow() and not b.available()  # fast-fail during cooldown
    clock.t += 5.0
    assert b.available()
    assert b.allow()  # the probe
    assert b.state == "half_open"
    assert not b.allow()  # only one probe at a time
    b.success(0.05)
    assert b.state == "closed" and b.allow()
    assert b.consecutive == 0


def test_failed_probe_reopens_for_a_new_cooldown() -> None:
    clock = Clock()
    b = breaker(clock, failures=1)
    b.failure()
    clock.t += 5.0
    assert b.allow()
    b.failure("timeout")
    assert b.state == "open"
    clock.t += 4.9
    assert not b.allow()
    clock.t += 0.2
    assert b.allow()


def test_released_probe_frees_the_slot() -> None:
    clock = Clock()
    b = breaker(clock, failures=1)
    b.failure()
    clock.t += 5.0
    assert b.allow() and not b.allow()
    b.release()
    assert b.allow()


def test_error_rate_in_window_opens_without_consecutive_failures() -> None:
    clock = Clock()
    b = breaker(clock, failures=100, min_requests=4, error_rate=0.5)
    for ok in (True, False, True, False):  # never two failures in a row
        if ok:
            b.success(0.01)
        else:
            b.failure()
    assert b.state == "open"
    assert b.snapshot()["error_rate"] == 0.5


def test_window_forgets_old_outcomes() -> None:
    clock = Clock()
    b = breaker(clock, failures=100, min_requests=4)
    b.failure()
    b.failure()
    clock.t += 11.0
    for _ in range(3):
        b.success(0.01)
    b.failure()
    assert b.state == "closed"
    assert b.error_rate() == 0.25
    assert b.requests_in_window() == 4


def test_latency_and_throughput_ewma() -> None:
    clock = Clock()
    b = breaker(clock, ewma_alpha=0.5)
    b.success(0.100, tokens=100)
    assert b.latency_ms == 100.0 and b.tokens_per_s == 1000.0
    b.success(0.300, tokens=30)
    assert b.latency_ms == 200.0
    assert b.tokens_per_s == 550.0
    snap = b.snapshot()
    assert snap["state"] == "closed" and snap["latency_ms"] == 200.0


def test_board_notifies_transitions_and_forced_states_do_not() -> None:
    seen: list[tuple[str, str, str]] = []
    clock = Clock()
    board = BreakerBoard(
        BreakerConfig(failures=1, cooldown_s=1.0),
        clock=clock,
        on_change=lambda b, old: seen.append((b.id, old, b.state)),
    )
    a = board.get("a/x")
    assert board.get("a/x") is a
    a.failure()
    clock.t += 1.0
    a.allow()
    a.success(0.01)
    assert seen == [
        ("a/x", "closed", "open"),
        ("a/x", "open", "half_open"),
        ("a/x", "half_open", "closed"),
    ]
    b = board.get("b/y")
    b.force_open()
    assert b.state == "open" and not b.allow()
    b.force_close()
    assert b.state == "closed"
    assert len(seen) == 3
    assert {x.id for x in board} == {"a/x", "b/y"}
