"""Bare pass-through floors for the overhead benchmark: Starlette + httpx, Starlette + aiohttp.

No auth, no parsing, no accounting: forward the body to ``BENCH_UPSTREAM`` and relay the
answer (streamed when the upstream streams).  What Tollhouse adds on top of these is the
cost of its own pipeline; what these add on top of a direct call is the cost of a
Python ASGI hop with each HTTP client.

    BENCH_UPSTREAM=http://127.0.0.1:18000 granian --interface asgi --factory \
        passthrough:httpx_app
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:18000") + "/v1/chat/completions"
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
CANNED = (
    b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'
)
CANNED_HEADERS = [(b"content-type", b"application/json")]


def httpx_app() -> Starlette:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            state["client"] = client
            yield

    async def chat(request: Request) -> Response:
        client: httpx.AsyncClient = state["client"]
        body = await request.body()
        req = client.build_request("POST", UPSTREAM, content=body, headers=HEADERS)
        resp = await client.send(req, stream=True)
        if resp.headers.get("content-type", "").startswith("text/event-stream"):

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in resp.aiter_raw():
                        yield chunk
                finally:
                    await resp.aclose()

            return StreamingResponse(relay(), media_type="text/event-stream")
        content = await resp.aread()
        await resp.aclose()
        return Response(content, resp.status_code, media_type="application/json")

    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan
    )


def aiohttp_app() -> Starlette:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            state["session"] = session
            yield

    async def chat(request: Request) -> Response:
        session: aiohttp.ClientSession = state["session"]
        body = await request.body()
        resp = await session.post(UPSTREAM, data=body, headers=HEADERS)
        if resp.headers.get("content-type", "").startswith("text/event-stream"):

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in resp.content.iter_any():
                        yield chunk
                finally:
                    resp.release()

            return StreamingResponse(relay(), media_type="text/event-stream")
        content = await resp.read()
        resp.release()
        return Response(content, resp.status, media_type="application/json")

    return Starlette(
        routes=[Route("/v1/chat/completions", chat, methods=["POST"])], lifespan=lifespan
    )


def canned_app() -> Any:
    """No upstream at all: a raw ASGI app answering a canned completion (Granian's floor)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": CANNED_HEADERS})
        await send({"type": "http.response.body", "body": CANNED})

    return app


def canned_watch_app() -> Any:
    """``canned_app`` plus a task waiting on ``receive()`` for the disconnect once the body
    is read (what the gateway does to cancel an upstream call when the client goes away)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass

        async def watch() -> None:
            await receive()

        task = asyncio.get_running_loop().create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": CANNED_HEADERS})
            await send({"type": "http.response.body", "body": CANNED})
        finally:
            task.cancel()

    return app
