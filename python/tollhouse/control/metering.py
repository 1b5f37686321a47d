"""``GET /v1/metering/usage``: tokens and cost by model over a period, from the spend rows.

The period is ``?from=&to=`` (ISO 8601 or UNIX seconds) or ``?period=day|week|month``
(the current UTC one); the default is the current month (the billing period).  The admin
key sees every key's usage (optionally ``?key=<hash>``); a virtual key sees its own.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse import native
from tollhouse.control._auth import ControlGateway, admin_or_key
from tollhouse.control._http import endpoint, iso, json_response
from tollhouse.control._schema import (
    ADMIN_OR_VIRTUAL_KEY,
    ANY_OBJECT,
    TIME_RANGE,
    obj,
    query,
    spec,
)
from tollhouse.control._validation import query_str, query_time
from tollhouse.control.keys import period_starts
from tollhouse.errors import ValidationError
from tollhouse.store import SqlStore

_PERIODS = ("day", "week", "month")


async def usage_by_model(
    store: SqlStore, since: float, until: float, key_hash: str | None = None
) -> dict[str, dict[str, int]]:
    """Per model: requests, prompt/completion/cached tokens and cost (micro-dollars)."""
    where = "created_at >= ? AND created_at < ?"
    params: list[Any] = [since, until]
    if key_hash is not None:
        where += " AND key_hash = ?"
        params.append(key_hash)
    rows = await store._fetch(
        "SELECT model, COUNT(*), COALESCE(SUM(prompt_tokens), 0), "  # noqa: S608 - constant
        "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
        f"COALESCE(SUM(cost_micros), 0) FROM spend WHERE {where} GROUP BY model ORDER BY model",
        params,
    )
    return {
        r[0]: {
            "requests": int(r[1]),
            "prompt_tokens": int(r[2]),
            "completion_tokens": int(r[3]),
            "cached_tokens": int(r[4]),
            "cost_micros": int(r[5]),
        }
        for r in rows
    }


def _figures(requests: int, prompt: int, completion: int, cached: int, cost: int) -> dict[str, Any]:
    return {
        "requests": requests,
        "inputTokens": prompt,
        "outputTokens": completion,
        "cachedTokens": cached,
        "estimatedCostUsd": native.micros_to_usd(cost),
    }


def period_of(request: Request, now: float) -> tuple[float, float]:
    period = query_str(request, "period")
    since, until = query_time(request, "from"), query_time(request, "to")
    if period is not None:
        if period not in _PERIODS:
            raise ValidationError("invalid period", {"period": "one of day, week, month"})
        if since is not None or until is not None:
            raise ValidationError("invalid period", {"period": "give period or from/to, not both"})
        day, week, month = period_starts(now)
        return {"day": day, "week": week, "month": month}[period], now
    start = period_starts(now)[2] if since is None else since
    end = now if until is None else until
    if start > end:
        raise ValidationError("invalid time range", {"from": "must not be after 'to'"})
    return start, end


def routes(gw: ControlGateway) -> list[BaseRoute]:
    store = gw.store
    if not isinstance(store, SqlStore):
        return []

    @endpoint
    @spec(
        "tokens and cost by model over a period (default: this month)",
        params=(
            query("period", {"type": "string", "enum": list(_PERIODS)}, "or from/to"),
            *TIME_RANGE,
            query("key", {"type": "string", "maxLength": 128}, "a key hash (admin key)"),
        ),
        response=obj({"usage": ANY_OBJECT, "period": ANY_OBJECT}, ["usage", "period"]),
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def usage(request: Request) -> Response:
        caller = admin_or_key(request, gw)
        key = query_str(request, "key", max_len=128)
        if caller is not None:
            if key is not None and key != caller.hash:
                raise ValidationError("invalid key", {"key": "a virtual key sees only itself"})
            key = caller.hash
        since, until = period_of(request, time.time())
        by_model = await usage_by_model(store, since, until, key)
        totals = [0, 0, 0, 0, 0]
        out: dict[str, Any] = {}
        for model, f in by_model.items():
            values = [
                f["requests"],
                f["prompt_tokens"],
                f["completion_tokens"],
                f["cached_tokens"],
                f["cost_micros"],
            ]
            totals = [a + b for a, b in zip(totals, values, strict=True)]
            out[model] = _figures(*values)
        return json_response(
            {
                "usage": {**_figures(*totals), "byModel": out},
                "period": {"from": iso(since), "to": iso(until)},
            }
        )

    return [Route("/v1/metering/usage", usage, methods=["GET"])]
