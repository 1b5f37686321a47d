"""``GET /v1/credits``: total spend limit and usage (OpenRouter shape, USD at the edge).

With the admin key: the sum of every enabled key's limit and all recorded spend.  With
a virtual key: that key's own limit and its usage in the current limit window.
Usage comes from the spend rows (the durable record), not from the counters.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._auth import ControlGateway, admin_or_key
from tollhouse.control._http import endpoint, json_response
from tollhouse.control._schema import ADMIN_OR_VIRTUAL_KEY, envelope, number, obj, spec
from tollhouse.guard.budgets import window

MICROS = 1_000_000


def _usd(micros: int) -> float:
    return round(micros / MICROS, 6)


def routes(gw: ControlGateway) -> list[BaseRoute]:
    @endpoint
    @spec(
        "total spend limit and usage, USD",
        response=envelope(obj({"total_credits": number(), "total_usage": number()})),
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def credits(request: Request) -> Response:
        caller = admin_or_key(request, gw)
        if caller is None:
            keys = await gw.store.all_keys()
            usage = await gw.store.key_usage([k.hash for k in keys], [0.0])
            total_limit = sum(k.limit_micros or 0 for k in keys if not k.disabled)
            total_usage = sum(u[0] for u in usage.values())
        else:
            now_ms = int(time.time() * 1000)
            since = window(caller.limit_reset, now_ms).start_ms / 1000
            usage = await gw.store.key_usage([caller.hash], [since])
            total_limit = caller.limit_micros or 0
            total_usage = usage[caller.hash][0]
        return json_response(
            {"data": {"total_credits": _usd(total_limit), "total_usage": _usd(total_usage)}}
        )

    return [Route("/v1/credits", credits, methods=["GET"])]
