"""What the request path pays for cost and policy through the bindings (``make bench``)."""

from __future__ import annotations

import random
from typing import Any

from tollhouse.native import PolicyMatcher, PriceTable

PROSE = (
    "the quarterly report shows revenue growth across all regions please summarise "
    "customer feedback and draft a reply to our partners about the launch timeline "
    "München café résumé function return value error handling in rust python code"
).split()


def _prompt(size: int) -> str:
    rng = random.Random(7)
    words: list[str] = []
    total = 0
    while total < size:
        word = rng.choice(PROSE)
        words.append(word)
        total += len(word) + 1
    return " ".join(words)


def _keywords(count: int) -> list[str]:
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(5, 12))) for _ in range(count)]


def test_price_table_cost(benchmark: Any) -> None:
    table = PriceTable()
    benchmark(table.cost, "gpt-4o", 12_345, 678, 4_096)


def test_price_table_worst_case(benchmark: Any) -> None:
    table = PriceTable()
    benchmark(table.worst_case, "claude-sonnet-4-5-20250929", 50_000, None)


def test_policy_check_small_prompt(benchmark: Any) -> None:
    matcher = PolicyMatcher([{"id": "kw", "keywords": _keywords(10_000), "whole_word": True}])
    benchmark(matcher.check, "Please summarise the attached report in three points.", "gpt-4o")


def test_policy_check_100kb_prompt(benchmark: Any) -> None:
    matcher = PolicyMatcher(
        [
            {"id": "kw", "keywords": _keywords(10_000)},
            {"id": "ssn", "regex": [r"\b\d{3}-\d{2}-\d{4}\b"]},
            {"id": "models", "models_deny": ["*-preview"], "max_bytes": 1 << 20},
        ]
    )
    text = _prompt(100 * 1024)
    assert matcher.check(text, "gpt-4o") == []
    benchmark(matcher.check, text, "gpt-4o")
