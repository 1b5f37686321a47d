"""``POST /api/enforcement/check``: would this usage stay within policy?

Before calling a provider, a caller (another gateway, an agent runtime) asks whether a
usage of ``metric.value`` for a team / agent / feature / provider stays within every
ceiling that applies.  The answer is the decision the proxy itself applies inline:
``allow``, or the breached guardrail's ``block`` / ``throttle`` / ``route`` (with
``routeTarget``).  The check reads the counters and reserves nothing.

Callers authenticate with the admin key, or with a virtual key (then guardrails
assigned to that key apply too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._auth import admin_or_key
from tollhouse.control._http import endpoint, json_object, json_response
from tollhouse.control._schema import ADMIN_OR_VIRTUAL_KEY, Schema, number, obj, spec
from tollhouse.control.guardrails import LimitsGateway
from tollhouse.errors import ValidationError
from tollhouse.guard.budgets import PERIOD_ALIASES, Budget, Metric, Period
from tollhouse.guard.guardrails import Guardrail, RequestScope
from tollhouse.guard.limits import Ask, Limiter
from tollhouse.store.base import KeyRecord

_TOP = ("provider", "team", "agentId", "feature", "model", "metric")
_METRIC = ("type", "unit", "value", "window")
_UNITS: dict[str, tuple[str, ...]] = {
    "cost": ("usd", "USD", "dollars"),
    "tokens": ("tokens",),
    "requests": ("requests",),
}
_SEVERITY = {"block": 0, "throttle": 1, "route": 2}
_SCOPE: Schema = {"type": ["string", "null"], "minLength": 1, "maxLength": 200}
BODY = obj(
    {
        **{name: _SCOPE for name in _TOP[:5]},
        "metric": obj(
            {
                "type": {"enum": list(_UNITS)},
                "unit": {"enum": [*(u for units in _UNITS.values() for u in units), None]},
                "value": number(0, 1e15),
                "window": {"enum": [*PERIOD_ALIASES, None]},
            },
            ["type", "value"],
        )
        | {
            "oneOf": [
                {"properties": {"type": {"const": kind}, "unit": {"enum": [*units, None]}}}
                for kind, units in _UNITS.items()
            ]
        },
    },
    ["metric"],
)
DECISION = obj(
    {
        "allowed": {"type": "boolean"},
        "action": {"enum": ["allow", *_SEVERITY]},
        "routeTarget": {"type": ["string", "null"]},
        "guardrailId": {"type": ["string", "null"]},
        "message": {"type": "string"},
    },
    ["allowed", "action", "routeTarget", "guardrailId", "message"],
)
_VERB = {"block": "Block", "throttle": "Throttle", "route": "Reroute"}


@dataclass(frozen=True, slots=True)
class CheckRequest:
    scope: RequestScope
    metric: Metric
    amount: int  # in the metric's unit (micro-dollars for cost)
    window: Period | None  # None: every window


def _opt_str(data: dict[str, Any], name: str, errors: dict[str, str]) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        errors[name] = "expected a non-empty string (at most 200 characters)"
        return None
    return value


def parse_check(data: dict[str, Any], key_hash: str | None) -> CheckRequest:
    errors = {k: "unknown field" for k in data if k not in _TOP}
    strs = {name: _opt_str(data, name, errors) for name in _TOP[:5]}
    metric = data.get("metric")
    kind: Any = None
    amount = 0
    window: Period | None = None
    if not isinstance(metric, dict):
        errors["metric"] = "required: an object {type, unit, value, window}"
    else:
        errors.update({f"metric.{k}": "unknown field" for k in metric if k not in _METRIC})
        kind = metric.get("type")
        value = metric.get("value")
        if kind not in _UNITS:
            errors["metric.type"] = "expected tokens, cost or requests"
        elif metric.get("unit") is not None and metric.get("unit") not in _UNITS[kind]:
            errors["metric.unit"] = f"expected {_UNITS[kind][0]} for metric type {kind}"
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            errors["metric.value"] = "required: a non-negative number"
        elif value > 1e15:
            errors["metric.value"] = "must be at most 1e15"
        elif kind in _UNITS:
            amount = round(value * 1_000_000) if kind == "cost" else int(value)
        raw_window = metric.get("window")
        if raw_window is not None:
            if not isinstance(raw_window, str) or raw_window not in PERIOD_ALIASES:
                errors["metric.window"] = "expected day, week or month"
            else:
                window = PERIOD_ALIASES[raw_window]
    if errors:
        raise ValidationError("invalid enforcement check", errors)
    scope = RequestScope(
        key_hash=key_hash,
        team=strs["team"],
        agent=strs["agentId"],
        feature=strs["feature"],
        provider=strs["provider"],
        model=strs["model"],
    )
    return CheckRequest(scope, kind, amount, window)


def _decision(action: str, g: Guardrail | None, message: str) -> dict[str, Any]:
    return {
        "allowed": action == "allow",
        "action": action,
        "routeTarget": g.route_target if g is not None and action == "route" else None,
        "guardrailId": g.id if g is not None else None,
        "message": message,
    }


async def evaluate(
    limiter: Limiter, req: CheckRequest, key: KeyRecord | None = None
) -> dict[str, Any]:
    """The decision for ``req`` (and the calling key's own budget) against the
    limiter's current counters."""
    s = req.scope
    ask = Ask(s, key, worst_micros=0, prompt_tokens=0, max_output_tokens=0)
    budgets, _, rails = limiter.applicable(ask)
    by_id = {g.id: g for g in rails}
    breaches: list[tuple[int, str, Guardrail | None, str]] = []
    for rail in rails:
        if s.model is not None and not rail.model_allowed(s.model):
            breaches.append((0, "block", rail, f"guardrail {rail.name} (model {s.model})"))
        elif s.provider is not None and not rail.provider_allowed(s.provider):
            breaches.append((0, "block", rail, f"guardrail {rail.name} (provider {s.provider})"))
    relevant = [b for b in budgets if b.metric == req.metric and (req.window in (None, b.period))]
    now = int(limiter.clock() * 1000)
    charges = [b.charge(req.amount, now)[0] for b in relevant]
    levels = await limiter.read_levels(charges, now)
    for b, charge, level in zip(relevant, charges, levels, strict=True):
        if level.total + charge.amount <= b.limit:
            continue
        g = by_id.get(b.id) if b.scope == "guardrail" else None
        action: str = g.action if g is not None else "block"
        breaches.append((_SEVERITY[action], action, g, _what(b, g)))
    if not breaches:
        return _decision("allow", None, "within policy")
    _, verdict, by, what = min(breaches, key=lambda x: x[0])
    return _decision(verdict, by, f"{_VERB[verdict]} request according to {what}")


def _what(b: Budget, g: Guardrail | None) -> str:
    window = {"daily": "day", "weekly": "week", "monthly": "month"}.get(b.period or "", "all time")
    if g is not None:
        return f"guardrail {g.name} ({b.metric}/{window})"
    return f"{b.label} {b.metric} budget ({window})"


def routes(gw: LimitsGateway) -> list[BaseRoute]:
    @endpoint
    @spec(
        "would this usage stay within policy? (reads the counters, reserves nothing)",
        body=BODY,
        response=DECISION,
        auth=ADMIN_OR_VIRTUAL_KEY,
    )
    async def check(request: Request) -> Response:
        caller = admin_or_key(request, gw)
        req = parse_check(await json_object(request), caller.hash if caller else None)
        if caller is not None and req.scope.team is None and caller.team is not None:
            req = CheckRequest(
                RequestScope(
                    key_hash=caller.hash,
                    team=caller.team,
                    agent=req.scope.agent,
                    feature=req.scope.feature,
                    provider=req.scope.provider,
                    model=req.scope.model,
                ),
                req.metric,
                req.amount,
                req.window,
            )
        return json_response(await evaluate(gw.limits, req, caller))

    return [Route("/api/enforcement/check", check, methods=["POST"])]
