"""The ASGI application: a raw fast path for the data plane, Starlette for the rest.

``build_app(config)`` returns the app; Granian loads it through ``app_from_env`` (a
factory, so every worker process builds its own gateway from ``TOLLHOUSE_CONFIG``).
Data-plane paths are dispatched from a dict without touching Starlette; everything
else (control plane, lifespan, 404/405) goes through a Starlette app whose errors use
the same envelope.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from tollhouse import control
from tollhouse.config import Config, load_config
from tollhouse.errors import MethodNotAllowed, NotFound, TollhouseError
from tollhouse.gateway import Gateway
from tollhouse.metrics import METRICS, metrics_route
from tollhouse.proxy import asgi, messages, responses, routes

log = logging.getLogger("tollhouse")

CONFIG_ENV = "TOLLHOUSE_CONFIG"
Handler = Callable[[Gateway, asgi.Scope, asgi.Receive, asgi.Send], Awaitable[None]]

DATA_PLANE: dict[str, tuple[str, Handler]] = {
    "/v1/chat/completions": ("POST", routes.chat_completions),
    "/v1/embeddings": ("POST", routes.embeddings),
    "/v1/models": ("GET", routes.models),
    "/healthz": ("GET", routes.healthz),
    "/readyz": ("GET", routes.readyz),
    "/v1/messages": ("POST", messages.messages),
    "/v1/messages/count_tokens": ("POST", messages.count_tokens),
    "/v1/responses": ("POST", responses.responses),
}


def _envelope(exc: TollhouseError) -> Response:
    return Response(exc.body_bytes(), exc.status, exc.headers, "application/json")


async def _tollhouse_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, TollhouseError):
        raise exc
    return _envelope(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise exc
    if exc.status_code == 404:
        return _envelope(NotFound(f"no route for {request.method} {request.url.path}"))
    if exc.status_code == 405:
        return _envelope(MethodNotAllowed(f"method {request.method} not allowed here"))
    err = TollhouseError(str(exc.detail))
    body = {"error": {**err.body()["error"], "code": f"http_{exc.status_code}"}}
    return Response(orjson.dumps(body), exc.status_code, exc.headers, "application/json")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return _envelope(TollhouseError("internal error; see the gateway log"))


class App:
    """The ASGI callable Granian serves."""

    def __init__(self, gw: Gateway, control_routes: list[BaseRoute]) -> None:
        self.gw = gw

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await gw.start()
            try:
                async with METRICS.flusher():
                    yield
            finally:
                await gw.stop()

        self.starlette = Starlette(
            routes=[*control_routes, metrics_route()],
            lifespan=lifespan,
            exception_handlers={
                TollhouseError: _tollhouse_error,
                HTTPException: _http_error,
                Exception: _unexpected,
            },
        )

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] == "http":
            entry = DATA_PLANE.get(scope["path"])
            if entry is not None:
                method, handler = entry
                if scope["method"] == method:
                    await handler(self.gw, scope, receive, send)
                    return
                exc = MethodNotAllowed(f"method {scope['method']} not allowed; use {method}")
                await asgi.send_bytes(send, 405, exc.body_bytes(), [asgi.JSON])
                return
        await self.starlette(scope, receive, send)


def build_app(config: Config, gw: Gateway | None = None) -> App:
    gw = gw or Gateway.from_config(config)
    METRICS.configure(config)
    METRICS.track_webhooks(gw.events)
    METRICS.track_spend_writer(gw.spend)
    METRICS.track_key_cache(gw.keys)
    METRICS.track_limiter(gw.limits)
    METRICS.track_breakers(gw.router.board)
    if gw.alerts is not None:
        METRICS.track_alerts(gw.alerts)
    return App(gw, control.routes(gw))


def app_from_env() -> App:
    """Granian's factory: each worker loads the config named by ``TOLLHOUSE_CONFIG``."""
    path = os.environ.get(CONFIG_ENV) or None
    return build_app(load_config(path))
