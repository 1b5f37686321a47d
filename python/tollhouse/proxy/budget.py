"""The budgets-and-limits stage of the data plane (the policy lives in ``guard/limits``).

``admit`` runs after ``resolve``: it names the request's scope (key, team, agent from
``x-gate-agent-id`` / ``agentId``, feature from ``x-gate-feature`` / ``metadata.feature``,
member from ``user``), estimates its worst case (prompt tokens by the Rust core,
``max_tokens`` or the model's output ceiling, priced by ``PriceTable.worst_case``) and
reserves it.  A guardrail whose breach action is ``route`` rewrites the model and says
so in ``x-gate-rerouted-from`` / ``x-gate-guardrail-id``.

``settle`` runs in the handler's ``finally``: after success, upstream error, timeout or
client disconnect alike, it replaces the reservation by what was used.  It is shielded,
so a second cancellation cannot leave a reservation held.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollhouse import native
from tollhouse.errors import BudgetExceeded, TollhouseError
from tollhouse.gateway import Gateway
from tollhouse.guard.guardrails import RequestScope
from tollhouse.guard.limits import Ask
from tollhouse.proxy import asgi, pipeline
from tollhouse.proxy._settle import settle_shielded
from tollhouse.proxy.pipeline import Exchange
from tollhouse.routing.registry import Target

AGENT = b"x-gate-agent-id"
FEATURE = b"x-gate-feature"
REROUTED_FROM = b"x-gate-rerouted-from"
GUARDRAIL_ID = b"x-gate-guardrail-id"
DEFAULT_MAX_OUTPUT = 4096
MAX_REROUTES = 3


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= 200 else None


def request_scope(ex: Exchange, headers: list[asgi.Header]) -> RequestScope:
    key, route, body = ex.key, ex.route, ex.body or {}
    meta = body.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    raw_agent = asgi.header(headers, AGENT)
    raw_feature = asgi.header(headers, FEATURE)
    agent = _text(raw_agent.decode("latin-1")) if raw_agent else None
    agent = agent or _text(body.get("agentId")) or _text(meta.get("agentId"))
    feature = _text(raw_feature.decode("latin-1")) if raw_feature else None
    feature = feature or _text(meta.get("feature")) or _text(meta.get("tag"))
    return RequestScope(
        key_hash=key.hash if key is not None else None,
        team=key.team if key is not None else None,
        agent=agent,
        feature=feature,
        member=_text(body.get("user")),
        provider=route.provider.name if route is not None else None,
        model=route.model if route is not None else None,
    )


def _positive(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


def max_output(gw: Gateway, ex: Exchange) -> int:
    """The most output tokens the request can produce (all ``n`` choices)."""
    body, route = ex.body or {}, ex.route
    limit = (
        _positive(body.get("max_completion_tokens"))
        or _positive(body.get("max_tokens"))  # chat and Anthropic messages
        or _positive(body.get("max_output_tokens"))  # responses
    )
    if limit is None and route is not None:
        for model in (route.model, route.upstream_model):
            price = gw.prices.price(model)
            if price is not None:
                limit = price.max_output_tokens
                break
    return (limit or DEFAULT_MAX_OUTPUT) * (_positive(body.get("n")) or 1)


def worst_case(gw: Gateway, ex: Exchange, prompt: int, max_out: int) -> int:
    """The most the request can cost: routing may fall back to another deployment or
    model (configured fallbacks, the body's ``models``) after the reservation, so the
    dearest of the chain counts."""
    route = ex.route
    if route is None:
        return 0
    worst = 0
    names = _price_names(gw, route.model, route.upstream_model)
    extra = (ex.body or {}).get("models")
    for name in extra if isinstance(extra, list) else ():
        config = gw.models.get(name) if isinstance(name, str) else None
        if config is not None:
            names += [(config.name, d.model) for d in config.deployments]
    for names_of_one in names:
        for model in names_of_one:  # public name first, then the upstream model's
            cost = gw.prices.worst_case(model, prompt, max_out)
            if cost is not None:
                worst = max(worst, cost)
                break
    return worst


def _price_names(gw: Gateway, model: str, upstream: str) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [(model, upstream)]
    config = gw.models.get(model)
    if config is None:
        return out
    out += [(config.name, d.model) for d in config.deployments]
    for name in config.fallbacks:
        fallback = gw.models.get(name)
        if fallback is not None:
            out += [(fallback.name, d.model) for d in fallback.deployments]
    return out


def prompt_tokens(ex: Exchange) -> int:
    """Prompt tokens of a chat, Anthropic messages or responses body (with ``system`` /
    ``instructions`` and message items of ``input``), counted by the Rust core."""
    n = pipeline.count_prompt(ex)
    body = ex.body or {}
    model = ex.route.upstream_model if ex.route is not None else ""
    items = body.get("input")
    if isinstance(items, list):
        messages = [i for i in items if isinstance(i, dict)]
        if messages:
            n += native.count_messages_tokens(model, messages)
    for name in ("system", "instructions"):
        value = body.get(name)
        if isinstance(value, str):
            n += native.count_text_tokens(model, value)
        elif isinstance(value, list):
            n += native.count_text_tokens(model, orjson.dumps(value).decode())
    return n


async def admit(
    gw: Gateway, ex: Exchange, headers: list[asgi.Header], *, output: bool = True
) -> None:
    """Reserve the request's worst case (or raise the typed 429/403/503)."""
    routed_by: frozenset[str] = frozenset()
    for _ in range(MAX_REROUTES + 1):
        scope = request_scope(ex, headers)
        if not gw.limits.wants(scope, ex.key):
            return
        prompt = prompt_tokens(ex)
        max_out = max_output(gw, ex) if output else 0
        ask = Ask(scope, ex.key, worst_case(gw, ex, prompt, max_out), prompt, max_out, routed_by)
        adm = await gw.limits.admit(ask)
        if adm.reroute is None:
            ex.admission = adm
            ex.limit_headers += adm.headers
            return
        assert ex.key is not None and ex.route is not None  # noqa: S101 - set by resolve
        original = ex.route.model
        try:
            ex.route = pipeline.resolve(gw, ex.key, adm.reroute)
        except TollhouseError:
            raise BudgetExceeded(
                f"a guardrail routes {original!r} to {adm.reroute!r}, which this key "
                "cannot use on this gateway"
            ) from None
        routed_by |= {adm.guardrail_id or ""}
        ex.limit_headers += [
            (REROUTED_FROM, original.encode()),
            (GUARDRAIL_ID, (adm.guardrail_id or "").encode()),
        ]
    raise BudgetExceeded("guardrails keep rerouting this request; giving up")


def allowed_targets(ex: Exchange, targets: list[Target]) -> list[Target]:
    """Drop fallback deployments a guardrail that applies does not allow (the primary
    route was checked when admitted)."""
    rails = ex.admission.rails if ex.admission is not None else ()
    if not rails:
        return targets
    return [
        t
        for t in targets
        if all(g.model_allowed(t.model) and g.provider_allowed(t.provider) for g in rails)
    ]


async def settle(gw: Gateway, ex: Exchange) -> None:
    """Settle the reservation to what was used (zero if nothing reached the upstream)."""
    adm, ex.admission = ex.admission, None
    if adm is None or adm.reservation is None:
        return
    settle_ = gw.limits.settle(adm, cost_micros=ex.cost_micros, tokens=ex.tokens_used())
    await settle_shielded(settle_, "settling reservation")
