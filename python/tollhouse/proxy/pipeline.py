"""The data-plane pipeline stages, one function each.

``routes.py`` runs them in order::

    authenticate -> parse (chat/embeddings) -> resolve -> [reserve] -> upstream ->
    usage -> price -> [settle] -> headers -> record (background spend row)

Each stage either returns what the next needs or raises a typed error from
``errors.py``.  Later stages (budgets, policy/redaction, routing, metrics) slot in
between these calls; everything a request accumulates lives on its ``Exchange``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tollhouse import native
from tollhouse.errors import InvalidRequest, ModelNotAllowed, ModelNotFound, NoProviderKey
from tollhouse.guard.keys import bearer_token
from tollhouse.guard.limits import Admission
from tollhouse.guard.sessions import Ticket
from tollhouse.metrics import METRICS
from tollhouse.providers import Provider
from tollhouse.proxy import asgi
from tollhouse.store.base import KeyRecord, SpendRow

if TYPE_CHECKING:
    from tollhouse.gateway import Gateway


@dataclass(slots=True)
class Route:
    """Where a request goes: the public model, its provider and the upstream model name."""

    model: str
    provider: Provider
    upstream_model: str


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False  # counted by the Rust core, not reported by the upstream


@dataclass(slots=True)
class Exchange:
    """Everything one request accumulates on its way through the pipeline."""

    started: float = field(default_factory=time.perf_counter)
    created_at: float = field(default_factory=time.time)
    request_id: str = field(default_factory=lambda: "gen-" + os.urandom(12).hex())
    key: KeyRecord | None = None
    route: Route | None = None
    body: dict[str, Any] | None = None
    stream: bool = False
    upstream_s: float = 0.0
    ttft_s: float | None = None
    usage: Usage | None = None
    cost_micros: int = 0
    status: int = 200
    error_code: str | None = None
    cancelled: bool = False
    finish_reason: str | None = None
    responded: bool = False  # the response headers went out (later errors go in-band)
    admission: Admission | None = None  # the budgets/limits reservation (proxy/budget.py)
    limit_headers: list[asgi.Header] = field(default_factory=list)  # x-ratelimit-*, reroute
    attempts: int = 0  # upstream tries (routing: retries and fallbacks)
    guard_headers: list[asgi.Header] = field(default_factory=list)  # x-gate-redacted, policy...
    redacted: int = 0  # items masked in the request (proxy/security.py)
    session: Ticket | None = None  # the session breakers' reservation (proxy/security.py)
    audit_mode: str | None = None  # "async" | "blocking" when the answer is audited
    snapshot: asyncio.Task[str | None] | None = None  # the snapshot POST (proxy/security.py)
    snapshot_id: str | None = None  # the id it returned, kept with the spend row
    stage_at: float = 0.0  # when the last pipeline stage ended (``stage``)

    def stage(self, name: str) -> None:
        """The stage ``name`` ended now: its time since the previous one (or the start)
        goes to ``tollhouse_stage_duration_seconds``."""
        now = time.perf_counter()
        METRICS.observe_stage(name, now - (self.stage_at or self.started))
        self.stage_at = now

    def tokens_used(self) -> int:
        """Prompt plus completion tokens of what the request used (0 without usage)."""
        usage = self.usage
        return usage.prompt_tokens + usage.completion_tokens if usage is not None else 0

    def overhead_ms(self) -> float:
        return (time.perf_counter() - self.started - self.upstream_s) * 1000.0


# -- auth ------------------------------------------------------------------------------


def authenticate(gw: Gateway, headers: list[asgi.Header]) -> KeyRecord:
    """The caller's key from ``Authorization: Bearer gk_...`` (memory only)."""
    raw = asgi.header(headers, b"authorization")
    token = bearer_token(raw.decode("latin-1")) if raw is not None else None
    return gw.keys.authenticate(token)


# -- parse -----------------------------------------------------------------------------

_INT_FIELDS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs")
_NUM_FIELDS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
_BOOL_FIELDS = ("stream", "logprobs", "parallel_tool_calls")
_OBJ_FIELDS = ("stream_options", "metadata", "logit_bias", "response_format")
_LIST_FIELDS = ("tools",)


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def _check_types(body: dict[str, Any]) -> None:
    for name in _INT_FIELDS:
        v = body.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise InvalidRequest(f"{name}: expected a non-negative integer")
    for name in _NUM_FIELDS:
        v = body.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise InvalidRequest(f"{name}: expected a number")
    for name in _BOOL_FIELDS:
        v = body.get(name)
        if v is not None and not isinstance(v, bool):
            raise InvalidRequest(f"{name}: expected true or false")
    for name in _OBJ_FIELDS:
        v = body.get(name)
        if v is not None and not isinstance(v, dict):
            raise InvalidRequest(f"{name}: expected an object")
    for name in _LIST_FIELDS:
        v = body.get(name)
        if v is not None and not isinstance(v, list):
            raise InvalidRequest(f"{name}: expected an array")


def _model_field(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: required, a non-empty string")
    return model


def parse_model_body(raw: bytes) -> dict[str, Any]:
    """A body of any client format (Anthropic Messages, Responses): a JSON object with
    a non-empty string ``model``."""
    body = parse_json(raw)
    _model_field(body)
    return body


def parse_chat(raw: bytes) -> dict[str, Any]:
    """A chat request body, checked for the fields the gateway relies on."""
    body = parse_json(raw)
    _model_field(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: required, a non-empty array of message objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{i}]: expected an object with a string 'role'")
    _check_types(body)
    return body


def parse_embeddings(raw: bytes) -> dict[str, Any]:
    body = parse_json(raw)
    _model_field(body)
    value = body.get("input")
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and value
        and (
            all(isinstance(v, str) for v in value)
            or all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or all(isinstance(v, list) for v in value)
        )
    )
    if not ok:
        raise InvalidRequest("input: required, a string or a non-empty array of strings/tokens")
    return body


# -- resolve ---------------------------------------------------------------------------


def key_allows(key: KeyRecord, model: str) -> bool:
    allowed = key.models
    if allowed is None:
        return True
    return any(
        model == a or (any(c in a for c in "*?[") and fnmatch.fnmatchcase(model, a))
        for a in allowed
    )


def resolve(gw: Gateway, key: KeyRecord, model: str) -> Route:
    """The deployment for a public model name (the first one; routing picks later)."""
    config = gw.models.get(model)
    if config is None:
        raise ModelNotFound(f"model {model!r} is not configured on this gateway")
    if not key_allows(key, model) and not key_allows(key, config.name):
        raise ModelNotAllowed(f"this key may not use model {model!r}")
    # The first deployment with a usable provider; routing (``routing.attempts``) then
    # plans every deployment and fallback of the request.
    for deployment in config.deployments:
        provider = gw.providers.get(deployment.provider)
        if provider is not None and provider.has_key:
            return Route(config.name, provider, deployment.model)
    name = config.deployments[0].provider
    raise NoProviderKey(f"no provider key configured for provider {name!r}")


# -- usage and cost --------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from(data: Any) -> Usage | None:
    """The upstream's reported usage (OpenAI shape), or None when it sent none."""
    if not isinstance(data, dict):
        return None
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = cache_write = 0
    if isinstance(details, dict):
        cached = _int(details.get("cached_tokens"))
        cache_write = _int(details.get("cache_write_tokens"))
    return Usage(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=cached,
        cache_write_tokens=cache_write,
    )


def count_prompt(ex: Exchange) -> int:
    """Prompt tokens of the request, counted by the Rust core."""
    body = ex.body or {}
    model = ex.route.upstream_model if ex.route else str(body.get("model", ""))
    messages = body.get("messages")
    if isinstance(messages, list):
        tools = body.get("tools")
        return native.count_messages_tokens(
            model, messages, tools if isinstance(tools, list) else None
        )
    value = body.get("input")
    if isinstance(value, str):
        return native.count_text_tokens(model, value)
    if isinstance(value, list):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += native.count_text_tokens(model, item)
            else:
                total += len(item) if isinstance(item, list) else 1
        return total
    return 0


def estimate_usage(ex: Exchange, completion_text: str) -> Usage:
    model = ex.route.upstream_model if ex.route else ""
    completion = native.count_text_tokens(model, completion_text) if completion_text else 0
    return Usage(count_prompt(ex), completion, estimated=True)


def completion_text(data: dict[str, Any]) -> str:
    """The text a non-stream chat answer generated (content and tool-call arguments)."""
    parts: list[str] = []
    choices = data.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            _message_text(message, parts)
    return "".join(parts)


def _message_text(message: dict[str, Any], parts: list[str]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            for name in ("name", "arguments"):
                if isinstance(fn.get(name), str):
                    parts.append(fn[name])


def price(gw: Gateway, ex: Exchange, usage: Usage) -> int:
    """Micro-dollars for ``usage`` (public model price first, then the upstream model's)."""
    route = ex.route
    if route is None:
        return 0
    for model in (route.model, route.upstream_model):
        cost = gw.prices.cost(
            model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.cache_write_tokens,
        )
        if cost is not None:
            return cost
    return 0


def settle(gw: Gateway, ex: Exchange, usage: Usage) -> None:
    """Record the true usage and its cost on the exchange (budgets settle here later)."""
    ex.usage = usage
    ex.cost_micros = price(gw, ex, usage)


def first_finish_reason(data: dict[str, Any]) -> str | None:
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


# -- headers ---------------------------------------------------------------------------


def usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


def gate_headers(ex: Exchange, *, cost: bool) -> list[asgi.Header]:
    headers = [(asgi.REQUEST_ID, ex.request_id.encode())]
    if ex.route is not None:
        headers.append((asgi.PROVIDER, ex.route.provider.name.encode()))
    if cost:
        headers.append((asgi.COST, usd(ex.cost_micros).encode()))
    if ex.attempts:
        headers.append((asgi.ATTEMPTS, str(ex.attempts).encode()))
    headers.extend(ex.limit_headers)
    headers.extend(ex.guard_headers)
    headers.append((asgi.OVERHEAD, f"{ex.overhead_ms():.3f}".encode()))
    return headers


# -- record ----------------------------------------------------------------------------


def observe(ex: Exchange) -> None:
    """Count the finished request in the worker's metrics (plain additions, no I/O)."""
    route, usage = ex.route, ex.usage
    METRICS.observe_request(
        route.model if route is not None else "",
        route.provider.name if route is not None else "",
        ex.status,
        ex.error_code or "",
        total_s=time.perf_counter() - ex.started,
        upstream_s=ex.upstream_s or None,
        ttft_s=ex.ttft_s,
        tokens_in=usage.prompt_tokens if usage is not None else 0,
        tokens_out=usage.completion_tokens if usage is not None else 0,
        cost_micros=ex.cost_micros,
    )


def record(gw: Gateway, ex: Exchange) -> None:
    """Count the request in the metrics and hand the spend row to the background writer
    (never awaits the store)."""
    observe(ex)
    key, route = ex.key, ex.route
    if key is None or route is None:
        return
    usage = ex.usage or Usage()
    if ex.status == 200 and usage.completion_tokens:  # routing's ``sort: throughput``
        gw.router.record_throughput_of(
            f"{route.provider.name}/{route.upstream_model}",
            usage.completion_tokens,
            time.perf_counter() - ex.started,
        )
    gw.spend.submit(
        SpendRow(
            id=ex.request_id,
            key_hash=key.hash,
            model=route.model,
            provider=route.provider.name,
            upstream_model=route.upstream_model,
            created_at=ex.created_at,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cost_micros=ex.cost_micros,
            latency_ms=(time.perf_counter() - ex.started) * 1000.0,
            ttft_ms=ex.ttft_s * 1000.0 if ex.ttft_s is not None else None,
            status=ex.status,
            error_code=ex.error_code,
            streamed=ex.stream,
            cancelled=ex.cancelled,
            finish_reason=ex.finish_reason,
            team=key.team,
            workspace_id=key.workspace_id,
            metadata={"snapshot_id": ex.snapshot_id} if ex.snapshot_id else {},
        )
    )
