"""Fixtures: a test upstream and a real ``tollhouse serve`` in front of it, per module.

Imported by the conftest of each test package that talks to a running gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.gateway import Stack
from tests.support.upstream import Upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"), upstream)
    with s.gateway:
        yield s


@pytest.fixture(autouse=True)
def _reset_upstream(upstream: Upstream) -> None:
    upstream.hang = False
    upstream.no_usage = False
    upstream.cut_after = None
    upstream.options(latency_ms=0.0, chunk_delay_ms=0.0)
    upstream.cancelled.clear()
