"""A real HTTP receiver on 127.0.0.1 for webhook tests.

It records every request and answers from a script of ``Reply`` values (status,
headers, delay), then with the default reply::

    async with Receiver() as rx:
        rx.plan(Reply(500), Reply(429, headers={"Retry-After": "1"}), 200)
        ... rx.url ...
        await rx.wait_for(3)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (longer than the client timeout = timeout)
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() on arrival


class Receiver:
    def __init__(self, default: Reply | None = None) -> None:
        self.requests: list[Received] = []
        self.default = default or Reply()
        self._plan: deque[Reply] = deque()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._arrived = asyncio.Event()

    def plan(self, *replies: Reply | int) -> None:
        """Queue replies for the next requests (an int is a bare status)."""
        self._plan.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    @property
    def port(self) -> int:
        return self._port

    def url_for(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._port}{path}"

    @property
    def url(self) -> str:
        return self.url_for()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Received(
                method=request.method,
                path=request.path_qs,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                at=time.monotonic(),
            )
        )
        self._arrived.set()
        reply = self._plan.popleft() if self._plan else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least ``n`` requests arrived; fail the test on timeout."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
