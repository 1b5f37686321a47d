"""What redaction costs through the Python binding (``make bench``; off in the test run)."""

from __future__ import annotations

from typing import Any

from tollhouse import native

PROSE = (
    "Please summarise the meeting notes and list the action items. The deploy on "
    "2024-03-15 at 12:30:45 failed: version 1.4.2 could not reach the database "
    "(commit 3f786850e387550fdab836ed7e6dc881de23001b, request 550e8400-e29b-41d4-a716-"
    "446655440000). Our token budget is 4096 tokens. "
)
SECRETS = [
    "Contact jane.doe@example.com or call +1 (415) 555-2671. ",
    "Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32. ",
    "export OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj\n",
    'password = "Xk9#mQ2!vL7p" and aws AKIAIOSFODNN7EXAMPLE. ',
]


def prompt(size: int) -> str:
    out, i = [], 0
    while sum(map(len, out)) < size:
        out.append(PROSE)
        if i % 4 == 0:
            out.append(SECRETS[(i // 4) % len(SECRETS)])
        i += 1
    return "".join(out)


RED = native.Redactor()
P10K = prompt(10 * 1024)
P1M = prompt(1024 * 1024)


def test_redact_10kb_prompt(benchmark: Any) -> None:
    benchmark(RED.redact, P10K)


def test_scan_10kb_prompt(benchmark: Any) -> None:
    benchmark(RED.scan, P10K)


def test_redact_1mb_prompt(benchmark: Any) -> None:
    benchmark(RED.redact, P1M)


def test_redact_short_message(benchmark: Any) -> None:
    benchmark(RED.redact, "Hi! Can you help me write a cover letter for a data analyst job?")


def test_stream_feed_one_token(benchmark: Any) -> None:
    s = RED.stream()
    benchmark(s.feed, " token")
