"""A small Starlette app with ``/metrics`` for Granian multi-worker tests.

``GET /hit?model=M&status=S`` counts one request in the serving worker;
``GET /pid`` names the worker.  The shared directory comes from
``TOLLHOUSE_METRICS_DIR`` (set by the test before Granian starts its workers).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tollhouse.metrics import METRICS, MetricsSettings, metrics_route


async def hit(request: Request) -> PlainTextResponse:
    model = request.query_params.get("model", "mock-1")
    status = int(request.query_params.get("status", "200"))
    METRICS.observe_request(
        model,
        "mock",
        status,
        "" if status == 200 else "provider_error",
        total_s=0.004,
        upstream_s=0.003,
        tokens_in=10,
        tokens_out=5,
        cost_micros=20,
    )
    return PlainTextResponse(str(os.getpid()))


async def pid(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    METRICS.settings = MetricsSettings(flush_interval=0.1)
    async with METRICS.flusher():
        yield


app = Starlette(routes=[Route("/hit", hit), Route("/pid", pid), metrics_route()], lifespan=lifespan)
