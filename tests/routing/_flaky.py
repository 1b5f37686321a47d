"""Test upstreams for routing: the shared OpenAI-shaped ``Upstream`` plus a script of
faults (status with headers such as ``Retry-After``, never answering, dropping the
connection), and an in-process gateway over several of them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from tests.support.gateway import acreate_key, asgi_request, free_port, running_app
from tests.support.upstream import Seen, Upstream

from tollhouse.app import App


class Flaky(Upstream):
    """``script(...)`` faults are served first, then ``always`` (if set), then answers."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.faults: deque[tuple[Any, ...]] = deque()
        self.always: tuple[Any, ...] | None = None

    def script(self, *faults: tuple[Any, ...]) -> None:
        self.faults.extend(faults)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        fault = self.faults.popleft() if self.faults else self.always
        if fault is None:
            return await super()._chat(request)
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(Seen(request.method, request.path_qs, headers, raw))
        kind = fault[0]
        if kind == "status":
            status, extra = fault[1], (fault[2] if len(fault) > 2 else {})
            body = orjson.dumps({"error": {"message": f"upstream {status}"}})
            return web.Response(status=status, body=body, headers=extra)
        if kind == "hang":  # never send the headers
            await self._gone(request, 3600)
            return web.Response(status=500)
        if kind == "drop":  # close the connection without an answer
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        raise AssertionError(f"unknown fault {fault!r}")


def dead_url() -> str:
    """A base URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/v1"


def provider(url: str, **kw: Any) -> dict[str, Any]:
    return {
        "kind": "openai_compatible",
        "base_url": url,
        "api_key": "sk-test",
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "total_timeout": 5,
        **kw,
    }


FAST_ROUTING: dict[str, Any] = {
    "retries": 2,
    "max_attempts": 10,
    "backoff_base_ms": 5,
    "backoff_max_ms": 20,
    "retry_budget_ms": 2000,
    "max_retry_after_ms": 1000,
    "failover_probe_ms": 300,
    "breaker": {"failures": 3, "min_requests": 1000, "cooldown_ms": 400},
}


class Gate:
    """An in-process gateway app and a key for it."""

    def __init__(self, app: App, key: str) -> None:
        self.app = app
        self.key = key

    @property
    def gw(self) -> Any:
        return self.app.gw

    async def chat(
        self, body: dict[str, Any], path: str = "/v1/chat/completions"
    ) -> tuple[int, dict[str, str], bytes]:
        headers = [("authorization", f"Bearer {self.key}"), ("content-type", "application/json")]
        return await asgi_request(self.app, "POST", path, body=orjson.dumps(body), headers=headers)

    async def get(self, path: str, admin: str | None = None) -> tuple[int, Any]:
        token = admin or self.key
        status, _, body = await asgi_request(
            self.app, "GET", path, headers=[("authorization", f"Bearer {token}")]
        )
        return status, orjson.loads(body) if body else None

    async def generation(self, request_id: str) -> Any:
        """The spend row of one request (flushed from the writer first)."""
        await self.gw.spend.flush()
        return await self.gw.store.get_generation(request_id)


@asynccontextmanager
async def gateway(tmp: Path, config: dict[str, Any]) -> AsyncIterator[Gate]:
    store = f"sqlite:///{tmp / 'routing.db'}"
    full = {"store": store, "routing": FAST_ROUTING, **config}
    raw, _ = await acreate_key(store)
    async with running_app(full) as app:
        yield Gate(app, raw)


async def in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
