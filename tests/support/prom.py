"""A strict reader of the Prometheus text format for tests."""

from __future__ import annotations

import re

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    """Samples of a text exposition, checking every line's shape on the way."""
    samples: Samples = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        m = _LINE.match(line)
        assert m, f"malformed line: {line!r}"
        name, labels, value = m.groups()
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"sample before its TYPE: {line!r}"
        key = (name, frozenset(_LABEL.findall(labels or "")))
        assert key not in samples, f"duplicate series: {line!r}"
        samples[key] = float(value)
    return samples


def sample(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]
