"""A real OpenAI-shaped upstream on 127.0.0.1 for proxy tests.

It answers from the deterministic mock engine (``tollhouse.providers.mock``), records
every request, and can be told to fail or stall.  It runs its own event loop in a
thread, so sync tests, async tests and gateway subprocesses can all call it::

    with Upstream() as up:
        up.fail_next(503)                    # the next request answers 503
        up.options(latency_ms=500)           # every answer waits 500 ms
        ... base_url=up.url ...              # http://127.0.0.1:PORT/v1
        up.requests[-1].json                 # what the gateway sent
        up.wait_cancelled()                  # the client (gateway) went away mid-answer
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from tollhouse.providers.mock import MockEngine


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Upstream:
    def __init__(self, **options: Any) -> None:
        self.engine = MockEngine(options)
        self.requests: list[Seen] = []
        self.cancelled = threading.Event()
        self.completed = 0
        self._fail: deque[tuple[int, bytes]] = deque()
        self.hang = False  # accept the request and never answer
        self.no_usage = False  # strip usage from every answer (stream and not)
        self.cut_after: int | None = None  # drop the connection after N stream events
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def options(self, **options: Any) -> None:
        self.engine = MockEngine({**_as_dict(self.engine), **options})

    def fail_next(self, status: int, body: bytes | None = None, times: int = 1) -> None:
        payload = body or orjson.dumps({"error": {"message": f"upstream {status}"}})
        self._fail.extend([(status, payload)] * times)

    def heal(self) -> None:
        """Drop the failures still queued by ``fail_next``."""
        self._fail.clear()

    def wait_cancelled(self, timeout: float = 5.0) -> bool:
        return self.cancelled.wait(timeout)

    def wait_requests(self, n: int, timeout: float = 5.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"upstream saw {len(self.requests)} requests, wanted {n}")
            time.sleep(0.01)
        return self.requests

    # -- serving ---------------------------------------------------------------------

    async def _gone(self, request: web.Request, seconds: float) -> bool:
        """Sleep ``seconds``; True as soon as the client connection is closed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                self.cancelled.set()
                return True
            await asyncio.sleep(0.005)
        return False

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            Seen(
                request.method,
                request.path_qs,
                {k.lower(): v for k, v in request.headers.items()},
                raw,
            )
        )
        if self._fail:
            status, payload = self._fail.popleft()
            return web.Response(status=status, body=payload, content_type="application/json")
        body = orjson.loads(raw)
        plan = self.engine.plan(body)
        if self.hang:
            await self._gone(request, 3600)
            return web.Response(status=500)
        if plan.latency_ms and await self._gone(request, plan.latency_ms / 1000):
            return web.Response(status=499)
        if request.path.endswith("/embeddings"):
            data = self.engine.embeddings(body, plan)
            if self.no_usage:
                data.pop("usage", None)
            return web.Response(body=orjson.dumps(data), content_type="application/json")
        if not body.get("stream"):
            data = self.engine.completion(body, plan)
            if self.no_usage:
                data.pop("usage", None)
            self.completed += 1
            return web.Response(body=orjson.dumps(data), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events = self.engine.stream_events(body, plan)
        if self.no_usage:
            events = [e for e in events if b'"usage":{' not in e]
        try:
            for i, event in enumerate(events):
                if i == self.cut_after and request.transport is not None:
                    request.transport.close()
                    return resp
                if (
                    plan.chunk_delay_ms
                    and i
                    and await self._gone(request, plan.chunk_delay_ms / 1000)
                ):
                    return resp
                await resp.write(event)
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            self.cancelled.set()
            return resp
        self.completed += 1
        return resp

    async def _start(self, ready: threading.Event) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        ready.set()

    def start(self) -> Upstream:
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.create_task(self._start(ready))
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="test-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test upstream did not start")
        return self

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _as_dict(engine: MockEngine) -> dict[str, Any]:
    o = engine.options
    return {f: getattr(o, f) for f in o.__dataclass_fields__}
