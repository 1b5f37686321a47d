"""A real ``tollhouse serve`` with two workers (Redis counters) for the metrics tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.gateway import GatewayProcess, Stack
from tests.support.upstream import Upstream


@contextmanager
def two_worker_stack(directory: Path, redis_url: str) -> Iterator[Stack]:
    """Upstream + ``tollhouse serve --workers 2`` flushing metrics every 0.1 s."""
    with Upstream() as up:
        stack = Stack(directory, up, counters=redis_url, metrics={"flush_interval": 0.1})
        stack.gateway = GatewayProcess(stack.config_path, directory, workers=2)
        with stack.gateway:
            yield stack
