"""Lookups for the caller: ``/v1/key``, ``/v1/generation?id=`` and ``/v1/activity``.

``/v1/key`` answers for the calling virtual key.  ``/v1/generation`` and ``/v1/activity``
accept a virtual key (its own data only) or the admin key (everything).  Money is USD at
this edge, micro-dollars underneath.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse import native
from tollhouse.control._auth import ControlGateway, admin_or_key, require_virtual_key
from tollhouse.control._http import endpoint, iso, json_response
from tollhouse.control._schema import (
    ADMIN_OR_VIRTUAL_KEY,
    ANY_OBJECT,
    VIRTUAL_KEY,
    array,
    envelope,
    obj,
    query,
    spec,
)
from tollhouse.control.keys import usage_fields, usage_of
from tollhouse.errors import InvalidRequest, NotFound
from tollhouse.store.base import SpendRow

ACTIVITY_DAYS = 30


def generation_json(row: SpendRow) -> dict[str, Any]:
    """A spend row in the OpenRouter ``/generation`` shape (plus status/error fields)."""
    cost = native.micros_to_usd(row.cost_micros)
    generation_time = None if row.ttft_ms is None else max(0.0, row.latency_ms - row.ttft_ms)
    return {
        "id": row.id,
        "upstream_id": row.metadata.get("upstream_id"),
        "total_cost": cost,
        "usage": cost,
        "cache_discount": None,
        "upstream_inference_cost": None,
        "created_at": iso(row.created_at),
        "model": row.model,
        "upstream_model": row.upstream_model,
        "app_id": None,
        "streamed": row.streamed,
        "cancelled": row.cancelled,
        "provider_name": row.provider,
        "latency": row.latency_ms,
        "ttft": row.ttft_ms,
        "moderation_latency": None,
        "generation_time": generation_time,
        "finish_reason": row.finish_reason,
        "native_finish_reason": row.finish_reason,
        "tokens_prompt": row.prompt_tokens,
        "tokens_completion": row.completion_tokens,
        "native_tokens_prompt": row.prompt_tokens,
        "native_tokens_completion": row.completion_tokens,
        "native_tokens_cached": row.cached_tokens,
        "native_tokens_reasoning": row.metadata.get("reasoning_tokens"),
        "origin": "",
        "is_byok": False,
        "external_user": row.metadata.get("user"),
        "api_type": row.metadata.get("api_type", "completions"),
        "router": None,
        "status": row.status,
        "error_code": row.error_code,
        "team": row.team,
    }


def _activity_day(raw: str | None, now: float) -> tuple[float, str | None]:
    """``since`` and the single requested date (None: the last 30 days)."""
    today = datetime.fromtimestamp(now, UTC).date()
    first = today - timedelta(days=ACTIVITY_DAYS - 1)
    if raw is None or raw == "":
        return datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp(), None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest("query parameter 'date' must be YYYY-MM-DD") from None
    if not first <= day.date() <= today:
        raise InvalidRequest(f"query parameter 'date' must be within the last {ACTIVITY_DAYS} days")
    return day.timestamp(), raw


def routes(gw: ControlGateway) -> list[BaseRoute]:
    @endpoint
    @spec(
        "the calling virtual key",
        response=envelope(
            obj({"hash": {"type": "string"}, "name": {"type": "string"}}, closed=False)
        ),
        auth=VIRTUAL_KEY,
    )
    async def current_key(request: Request) -> Response:
        record = require_virtual_key(request, gw)
        usage = (await usage_of(gw.store, [record]))[record.hash]
        rate_limit = {
            "requests": -1 if record.rpm is None else record.rpm,
            "interval": "1m",
            "note": "requests per minute for this key; -1 means no limit",
        }
        data = {
            "hash": record.hash,
            "name": record.name,
            "label": record.label,
            "disabled": record.disabled,
            **usage_fields(record, usage),
            "is_free_tier": False,
            "is_management_key": False,
            "is_provisioning_key": False,
            "creator_user_id": None,
            "rate_limit": rate_limit,
            "rpm": record.rpm,
            "tpm": record.tpm,
            "models": None if record.models is None else list(record.models),
            "team": record.team,
        }
        return json_response({"data": data})

    @endpoint
    @spec(
        "one generation (a spend row)",
        params=(query("id", {"type": "string", "minLength": 1}, "generation id", required=True),),
        response=envelope(obj({"id": {"type": "string"}}, ["id"], closed=False)),
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def generation(request: Request) -> Response:
        caller = admin_or_key(request, gw)
        gen_id = request.query_params.get("id")
        if not gen_id:
            raise InvalidRequest("query parameter 'id' is required")
        row = gw.spend.find_pending(gen_id) or await gw.store.get_generation(gen_id)
        if row is None or (caller is not None and row.key_hash != caller.hash):
            raise NotFound("generation not found")
        return json_response({"data": generation_json(row)})

    @endpoint
    @spec(
        f"usage by day, model and provider over the last {ACTIVITY_DAYS} days",
        params=(query("date", {"type": "string", "format": "date"}, "one day, YYYY-MM-DD"),),
        response=envelope(array(ANY_OBJECT)),
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def activity(request: Request) -> Response:
        caller = admin_or_key(request, gw)
        since, only = _activity_day(request.query_params.get("date"), time.time())
        rows = await gw.store.activity(None if caller is None else caller.hash, since)
        data = [
            {
                "date": r["date"],
                "model": r["model"],
                "model_permaslug": r["model"],
                "endpoint_id": f"{r['provider_name']}/{r['model']}",
                "provider_name": r["provider_name"],
                "usage": native.micros_to_usd(r["cost_micros"]),
                "byok_usage_inference": 0.0,
                "requests": r["requests"],
                "prompt_tokens": r["prompt_tokens"],
                "completion_tokens": r["completion_tokens"],
                "reasoning_tokens": 0,
                "cached_tokens": r["cached_tokens"],
            }
            for r in rows
            if only is None or r["date"] == only
        ]
        return json_response({"data": data})

    return [
        Route("/v1/key", current_key, methods=["GET"]),
        Route("/v1/generation", generation, methods=["GET"]),
        Route("/v1/activity", activity, methods=["GET"]),
    ]
