"""CPU of the in-request security work (``python benches/security_bench.py``).

On a 10 KB chat prompt (prose with a few secrets and personal data): the session check
(fingerprint + one reserve and one settle in memory counters), the policy check (100
keyword rules, a regex rule, model globs, a token limit), and redaction of every text
leaf; then the three together, as ``proxy/security.inbound`` runs them.  The policy
check picks its workspace's matcher (50 workspaces with 5 rules each are loaded), and is
also timed for a key of one of them and, for comparison, with every workspace's rules in
one matcher (how policies were applied before they were scoped).  Also one 1 MB prompt
through redaction.  CPU is ``time.process_time`` per request (best of 3 runs).
Targets: ≤ 100 µs for the three stages on 10 KB; ≤ 20 ms for 1 MB.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from tollhouse.counters import MemoryCounters
from tollhouse.guard.loops import fingerprint
from tollhouse.guard.policies import PolicySet, Rules
from tollhouse.guard.presets import PRESETS
from tollhouse.guard.redaction import RequestRedactor, message_groups, request_text
from tollhouse.guard.sessions import SessionLimits, Sessions

PROSE = (
    "the quarterly report shows revenue growth across all regions please summarise "
    "customer feedback and draft a reply to our partners about the launch timeline "
    "function return value error handling in rust python code deployment review"
).split()
SECRETS = [
    "contact jane.doe@example.com",
    "key sk-proj-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn" * 2,
    "card 4111 1111 1111 1111",
    "AKIAIOSFODNN7EXAMPLE",
]
STANDARD = PRESETS["standard"]


def prompt(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    words: list[str] = []
    total = 0
    while total < size:
        word = rng.choice(PROSE) if rng.random() > 0.002 else rng.choice(SECRETS)
        words.append(word)
        total += len(word) + 1
    return " ".join(words)


def body(text: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text},
        ],
    }


def rules() -> list[dict[str, Any]]:
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out: list[dict[str, Any]] = [
        {"id": f"kw{i}", "keywords": ["".join(rng.choices(letters, k=9)) for _ in range(5)]}
        for i in range(100)
    ]
    out.append({"id": "rx", "action": "warn", "regex": [r"\bproject\s+[A-Z][a-z]+\b"]})
    out.append({"id": "models", "models_deny": ["gpt-3*", "*-preview"]})
    return out


def workspace_rules(n: int = 50) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(13)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {
        f"ws{w}": [
            {"id": f"ws{w}-{i}", "keywords": ["".join(rng.choices(letters, k=9))]} for i in range(5)
        ]
        for w in range(n)
    }


def cpu_per_call(fn: Callable[[int], None], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for i in range(n):
            fn(i)
        best = min(best, (time.process_time() - t) / n)
    return best * 1e6


def main() -> None:
    text = prompt(10_000)
    n = 2000
    bodies = [body(text) for _ in range(3 * n + 10)]
    policies = PolicySet.from_config(rules())
    scoped = workspace_rules()
    assert policies.replace_workspaces(scoped) == {}
    combined = Rules.compile([*rules(), *(r for ws in scoped.values() for r in ws)])
    red = RequestRedactor({})
    modes = red.modes_for(None)
    loop = asyncio.new_event_loop()
    sessions = Sessions(MemoryCounters(), SessionLimits.parse({"max_requests": 10**9}))
    now = int(time.time() * 1000)
    counter = iter(range(10**9))

    def noop(_t: str, _d: dict[str, Any]) -> None:
        return None

    async def one_session(i: int) -> None:
        fp = fingerprint(bodies[0], "gpt-4o-mini") + str(i)  # distinct: no loop trips
        sid = f"s{next(counter) % 64}"
        t = await sessions.admit("k", sid, STANDARD, fp, now, noop)
        assert t is not None
        await sessions.settle(t, 100, 10, now, noop)

    def session(i: int) -> None:
        loop.run_until_complete(one_session(i))

    async def sessions_in_loop(n: int) -> float:
        """The session check as the gateway runs it: inside a running event loop."""
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            for i in range(n):
                await one_session(i)
            best = min(best, (time.process_time() - t) / n)
        return best * 1e6

    def policy(i: int) -> None:
        groups = message_groups(bodies[0])
        policies.of("default").check(request_text(groups), "gpt-4o-mini")

    def policy_workspace(i: int) -> None:
        groups = message_groups(bodies[0])
        policies.of("ws7").check(request_text(groups), "gpt-4o-mini")

    def policy_combined(i: int) -> None:
        groups = message_groups(bodies[0])
        combined.check(request_text(groups), "gpt-4o-mini")

    fresh = iter(bodies)

    def redaction(i: int) -> None:
        b = next(fresh)
        red.apply(message_groups(b), STANDARD, modes)

    fresh_all = iter(bodies)

    def all_three(i: int) -> None:
        session(i)
        b = next(fresh_all)
        groups = message_groups(b)
        policies.of("default").check(request_text(groups), "gpt-4o-mini")
        red.apply(groups, STANDARD, modes)

    print(f"10 KB prompt ({len(text)} chars), CPU µs per request (best of 3, n={n}):")
    in_loop = loop.run_until_complete(sessions_in_loop(n))
    print(f"  {'session check, inside a running loop':<56} {in_loop:8.1f}")
    rows: list[tuple[str, Callable[[int], None], int]] = [
        ("session check, one run_until_complete each", session, n),
        ("policy check (102 config rules, no workspace rules)", policy, n),
        ("policy check, a key of a workspace (102 + 5 rules)", policy_workspace, n),
        ("policy check, all 50 workspaces in one matcher (352)", policy_combined, n),
        ("redaction (all families)", redaction, n // 2),
        ("all three (session via run_until_complete)", all_three, n // 2),
    ]
    for name, fn, count in rows:
        fresh = iter(bodies)
        fresh_all = iter(bodies)
        print(f"  {name:<56} {cpu_per_call(fn, count):8.1f}")
    big = prompt(1_000_000, seed=3)
    big_bodies = [body(big) for _ in range(12)]
    it = iter(big_bodies)

    def big_redaction(i: int) -> None:
        red.apply(message_groups(next(it)), STANDARD, modes)

    print(f"1 MB prompt redaction: {cpu_per_call(big_redaction, 4) / 1000:.2f} ms CPU")
    loop.close()


if __name__ == "__main__":
    main()
