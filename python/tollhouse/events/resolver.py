"""The aiohttp resolver of ``SSRFGuard``: apart so that importing the guard (config
validation, email targets) does not import aiohttp; only a webhook or snapshot client
that is actually opened does."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from tollhouse.events.ssrf import SSRFGuard


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses a host if ANY of its addresses is internal.

    All-or-nothing, because aiohttp may try every returned address in turn."""

    def __init__(self, guard: SSRFGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self._guard.check_resolved(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        await self._inner.close()
