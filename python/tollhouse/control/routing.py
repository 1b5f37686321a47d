"""Routing lookups in the OpenRouter shapes, and the deployments' live health.

- ``GET /v1/models/count``: ``{"data": {"count": N}}`` (public models the caller may use)
- ``GET /v1/models/{author}/{slug}/endpoints``: the model and one endpoint per deployment
  (pricing in USD per token as strings, supported parameters, status, uptime, latency,
  throughput from the breaker window)
- ``GET /v1/providers``: ``{"data": [{name, slug, ...}]}`` (configured providers)
- ``GET /v1/routing/health``: every deployment's breaker state, error rate and latency

Callers: the admin key or a virtual key (a key sees the models it may use).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._auth import ControlGateway, admin_or_key
from tollhouse.control._http import endpoint, json_response
from tollhouse.control._schema import (
    ADMIN_OR_VIRTUAL_KEY,
    ANY_OBJECT,
    array,
    envelope,
    integer,
    obj,
    query,
    spec,
)
from tollhouse.errors import InvalidRequest, ModelNotFound
from tollhouse.proxy.pipeline import key_allows
from tollhouse.routing.breaker import Breaker
from tollhouse.routing.failover import endpoint_status
from tollhouse.routing.registry import Target
from tollhouse.routing.router import Router
from tollhouse.store.base import KeyRecord

MODALITIES = frozenset({"text", "image", "audio", "embeddings", "all"})
_ONE = f"({'|'.join(sorted(MODALITIES))})"
_KIND_NAMES = {
    "openai": "OpenAI",
    "openai_compatible": "OpenAI-compatible",
    "anthropic": "Anthropic",
    "gemini": "Google AI Studio",
    "azure": "Azure",
    "mock": "Mock",
}


@runtime_checkable
class RoutingGateway(ControlGateway, Protocol):
    """What the routing routes need of the gateway."""

    @property
    def router(self) -> Router: ...


def _allowed(key: KeyRecord | None, name: str, canonical: str) -> bool:
    if key is None or key.models is None:
        return True
    return key_allows(key, name) or key_allows(key, canonical)


def _per_token(micros_per_mtok: int | None) -> str:
    """USD per token as OpenRouter prints it (a decimal string)."""
    if micros_per_mtok is None:
        return "0"
    return f"{micros_per_mtok / 1e12:.12f}".rstrip("0").rstrip(".") or "0"


def _endpoint(gw: RoutingGateway, t: Target, b: Breaker) -> dict[str, Any]:
    provider = gw.config.providers.get(t.provider)
    n = b.requests_in_window()
    status = endpoint_status(b)
    return {
        "name": f"{t.provider} | {t.upstream_model}",
        "model_name": t.model,
        "context_length": None,
        "pricing": {
            "prompt": _per_token(t.input_micros_per_mtok),
            "completion": _per_token(t.output_micros_per_mtok),
            "request": "0",
            "image": "0",
        },
        "provider_name": t.provider,
        "provider_kind": provider.kind if provider is not None else None,
        "tag": t.id,
        "quantization": None,
        "max_completion_tokens": None,
        "max_prompt_tokens": None,
        "supported_parameters": sorted(t.parameters) if t.parameters is not None else None,
        "status": {"healthy": 0, "degraded": -1, "down": -2}[status],
        "uptime_last_30m": round((1 - b.error_rate()) * 100, 2) if n else None,
        "latency_last_30m": round(b.latency_ms, 3) if b.latency_ms is not None else None,
        "throughput_last_30m": (round(b.tokens_per_s, 3) if b.tokens_per_s is not None else None),
        "supports_implicit_caching": False,
        "weight": t.weight,
        "region": t.region,
        "circuit": b.state,
    }


def routes(gw: RoutingGateway) -> list[BaseRoute]:
    router = gw.router
    registry = router.registry

    @endpoint
    @spec(
        "how many models the caller may use",
        params=(
            query(
                "output_modalities",
                {"type": "string", "pattern": f"^ *{_ONE}( *, *{_ONE})* *$"},
                "comma-separated: text, image, audio, embeddings or all",
            ),
        ),
        response=envelope(obj({"count": integer(0)}, ["count"])),
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def models_count(request: Request) -> Response:
        key = admin_or_key(request, gw)
        raw = request.query_params.get("output_modalities") or "text"
        wanted = {m.strip() for m in raw.split(",") if m.strip()}
        if not wanted or not wanted <= MODALITIES:
            raise InvalidRequest(
                "output_modalities: a comma-separated list of text, image, audio, "
                "embeddings or 'all'"
            )
        count = sum(1 for name in registry.model_names() if _allowed(key, name, name))
        return json_response({"data": {"count": count}})

    @endpoint
    @spec(
        "a model and one endpoint per deployment, with live status",
        response=envelope(
            obj({"id": {"type": "string"}, "endpoints": array(ANY_OBJECT)}, closed=False)
        ),
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def model_endpoints(request: Request) -> Response:
        key = admin_or_key(request, gw)
        author = str(request.path_params["author"])
        slug = str(request.path_params["slug"])
        config = registry.lookup(f"{author}/{slug}")
        if config is None:  # "provider/model" addressing of a plain public name
            candidate = registry.lookup(slug)
            if candidate is not None and any(d.provider == author for d in candidate.deployments):
                config = candidate
        if config is None or not _allowed(key, config.name, config.name):
            raise ModelNotFound(f"model {author}/{slug} does not exist")
        targets = registry.targets(config.name)
        data = {
            "id": config.name,
            "name": config.name,
            "created": 0,
            "description": "",
            "aliases": list(config.aliases),
            "fallbacks": list(config.fallbacks),
            "architecture": {
                "modality": "text->text",
                "input_modalities": ["text"],
                "output_modalities": ["text"],
                "tokenizer": "Other",
                "instruct_type": None,
            },
            "endpoints": [_endpoint(gw, t, router.breaker(t)) for t in targets],
        }
        return json_response({"data": data})

    @endpoint
    @spec(
        "the configured providers", response=envelope(array(ANY_OBJECT)), auth=ADMIN_OR_VIRTUAL_KEY
    )
    async def providers(request: Request) -> Response:
        admin_or_key(request, gw)
        data = [
            {
                "name": name,
                "slug": name,
                "kind": p.kind,
                "display_name": _KIND_NAMES.get(p.kind, p.kind),
                "privacy_policy_url": None,
                "terms_of_service_url": None,
                "status_page_url": None,
            }
            for name, p in gw.config.providers.items()
        ]
        return json_response({"data": data})

    @endpoint
    @spec(
        "every deployment's breaker state, error rate and latency",
        response=envelope(array(ANY_OBJECT)),
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def health(request: Request) -> Response:
        key = admin_or_key(request, gw)
        rows = [
            {**row, "status": endpoint_status(router.board.get(row["id"]))}
            for row in router.health()
            if _allowed(key, row["model"], row["model"])
        ]
        return json_response({"data": rows})

    return [
        Route("/v1/models/count", models_count, methods=["GET"]),
        Route("/v1/models/{author}/{slug}/endpoints", model_endpoints, methods=["GET"]),
        Route("/v1/providers", providers, methods=["GET"]),
        Route("/v1/routing/health", health, methods=["GET"]),
    ]
