"""Both backends behind one fixture: every contract test runs on memory and real Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from tollhouse.counters import Counters, MemoryCounters
from tollhouse.counters.redis import RedisCounters


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    url: str = request.getfixturevalue("redis_url")
    # A prefix of its own per test: one Redis serves the whole session.
    backend = RedisCounters(url, prefix=f"t{secrets.token_hex(4)}:")
    try:
        yield backend
    finally:
        await backend.close()


async def held_total(c: Counters) -> int:
    if isinstance(c, MemoryCounters):
        return c.held_total()
    assert isinstance(c, RedisCounters)
    return await c.held_total()
