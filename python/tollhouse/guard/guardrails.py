"""Guardrails: named spend and usage ceilings with a breach action.

The record carries the OpenRouter fields (``limit_usd``, ``reset_interval``,
``allowed_models``, ``allowed_providers``, ``ignored_providers``, ``enforce_zdr``) plus
the enforcement-check ones: scope filters (``team``, ``agent_id``, ``feature``,
``provider``, ``models``), token and request ceilings, and the ``action`` taken when a
ceiling is hit (``block`` | ``throttle`` | ``route`` to ``route_target``).

A guardrail applies to a request when the request's key (or member) is assigned to it,
or when it has a team / agent / feature filter and every filter it sets matches; its
``provider`` and ``models`` filters then narrow it further.
"""

from __future__ import annotations

import fnmatch
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

from tollhouse.errors import ValidationError
from tollhouse.guard.budgets import PERIOD_ALIASES, Budget, Period

Action = Literal["block", "throttle", "route"]
ACTIONS: Final[tuple[str, ...]] = ("block", "throttle", "route")
MICROS: Final = 1_000_000
_LISTS = ("allowed_models", "allowed_providers", "ignored_providers", "models")
_STRS = ("description", "team", "agent_id", "feature", "provider", "route_target")
FIELDS: Final[tuple[str, ...]] = (
    "name",
    "description",
    "limit_usd",
    "reset_interval",
    "allowed_models",
    "allowed_providers",
    "ignored_providers",
    "enforce_zdr",
    "team",
    "agent_id",
    "feature",
    "provider",
    "models",
    "limit_tokens",
    "limit_requests",
    "action",
    "route_target",
)


@dataclass(frozen=True, slots=True)
class RequestScope:
    """Who and what a request is, as far as guardrails and budgets care."""

    key_hash: str | None = None
    team: str | None = None
    agent: str | None = None
    feature: str | None = None
    member: str | None = None
    provider: str | None = None
    model: str | None = None


def _glob(value: str, patterns: tuple[str, ...]) -> bool:
    return any(value == p or fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class Guardrail:
    id: str
    name: str
    created_at: float
    updated_at: float | None = None
    description: str | None = None
    limit_micros: int | None = None
    reset_interval: Period | None = None
    allowed_models: tuple[str, ...] | None = None
    allowed_providers: tuple[str, ...] | None = None
    ignored_providers: tuple[str, ...] | None = None
    enforce_zdr: bool = False
    team: str | None = None
    agent_id: str | None = None
    feature: str | None = None
    provider: str | None = None
    models: tuple[str, ...] | None = None
    limit_tokens: int | None = None
    limit_requests: int | None = None
    action: Action = "block"
    route_target: str | None = None
    key_hashes: frozenset[str] = field(default_factory=frozenset)
    member_user_ids: frozenset[str] = field(default_factory=frozenset)

    # -- matching ------------------------------------------------------------------------

    def has_filter(self) -> bool:
        return any(v is not None for v in (self.team, self.agent_id, self.feature))

    def applies(self, s: RequestScope) -> bool:
        assigned = (s.key_hash is not None and s.key_hash in self.key_hashes) or (
            s.member is not None and s.member in self.member_user_ids
        )
        if not assigned:
            if not self.has_filter():
                return False
            for want, have in (
                (self.team, s.team),
                (self.agent_id, s.agent),
                (self.feature, s.feature),
            ):
                if want is not None and want != have:
                    return False
        return self.in_scope(s.provider, s.model)

    def in_scope(self, provider: str | None, model: str | None) -> bool:
        if self.provider is not None and provider is not None and provider != self.provider:
            return False
        return not (self.models is not None and model is not None and not _glob(model, self.models))

    def model_allowed(self, model: str) -> bool:
        return self.allowed_models is None or _glob(model, self.allowed_models)

    def provider_allowed(self, provider: str) -> bool:
        if self.ignored_providers is not None and provider in self.ignored_providers:
            return False
        return self.allowed_providers is None or provider in self.allowed_providers

    def budgets(self) -> list[Budget]:
        out: list[Budget] = []
        p = self.reset_interval
        if self.limit_micros is not None:
            out.append(Budget("guardrail", self.id, self.limit_micros, p, "cost", self.name))
        if self.limit_tokens is not None:
            out.append(Budget("guardrail", self.id, self.limit_tokens, p, "tokens", self.name))
        if self.limit_requests is not None:
            out.append(Budget("guardrail", self.id, self.limit_requests, p, "requests", self.name))
        return out

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The OpenRouter shape (money in USD at this edge only) plus our extensions."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "limit_usd": None if self.limit_micros is None else self.limit_micros / MICROS,
            "reset_interval": self.reset_interval,
            "allowed_providers": _list(self.allowed_providers),
            "ignored_providers": _list(self.ignored_providers),
            "allowed_models": _list(self.allowed_models),
            "enforce_zdr": self.enforce_zdr,
            "team": self.team,
            "agent_id": self.agent_id,
            "feature": self.feature,
            "provider": self.provider,
            "models": _list(self.models),
            "limit_tokens": self.limit_tokens,
            "limit_requests": self.limit_requests,
            "action": self.action,
            "route_target": self.route_target,
            "created_at": iso(self.created_at),
            "updated_at": None if self.updated_at is None else iso(self.updated_at),
        }

    def to_record(self) -> dict[str, Any]:
        """What the store keeps (assignments live in their own table)."""
        out = self.to_json()
        del out["id"], out["created_at"], out["updated_at"], out["limit_usd"]
        out["limit_micros"] = self.limit_micros
        return out

    @classmethod
    def from_record(
        cls,
        gid: str,
        data: dict[str, Any],
        created_at: float,
        updated_at: float | None,
        keys: frozenset[str] = frozenset(),
        members: frozenset[str] = frozenset(),
    ) -> Guardrail:
        kw: dict[str, Any] = {k: data.get(k) for k in FIELDS if k not in ("limit_usd", "name")}
        for name in _LISTS:
            if kw[name] is not None:
                kw[name] = tuple(kw[name])
        kw["enforce_zdr"] = bool(kw["enforce_zdr"])
        kw["action"] = kw["action"] or "block"
        return cls(
            id=gid,
            name=str(data.get("name", "")),
            created_at=created_at,
            updated_at=updated_at,
            limit_micros=data.get("limit_micros"),
            key_hashes=keys,
            member_user_ids=members,
            **kw,
        )


def _list(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


# -- validation -----------------------------------------------------------------------------


def _check(data: Any, *, creating: bool) -> dict[str, Any]:
    """Validated changes from a create/patch body; every problem named per field."""
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object", {"body": "expected object"})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for name in data:
        if name not in FIELDS:
            errors[name] = "unknown field"
    if creating and "name" not in data:
        errors["name"] = "required"
    for name, value in data.items():
        if name not in FIELDS:
            continue
        if name == "name":
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                errors[name] = "expected a non-empty string (at most 200 characters)"
            else:
                out[name] = value.strip()
        elif name in _STRS:
            if value is not None and (not isinstance(value, str) or not value):
                errors[name] = "expected a non-empty string or null"
            else:
                out[name] = value
        elif name in _LISTS:
            if value is not None and (
                not isinstance(value, list)
                or len(value) > 1000
                or not all(isinstance(v, str) and v for v in value)
            ):
                errors[name] = "expected an array of non-empty strings or null"
            else:
                out[name] = None if value is None else tuple(dict.fromkeys(value))
        elif name == "limit_usd":
            if value is None:
                out["limit_micros"] = None
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                errors[name] = "expected a non-negative number of USD or null"
            elif value > 1e9:
                errors[name] = "must be at most 1000000000"
            else:
                out["limit_micros"] = round(value * MICROS)
        elif name in ("limit_tokens", "limit_requests"):
            if isinstance(value, float) and value.is_integer():  # 5.0 is 5 in JSON
                value = int(value)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                errors[name] = "expected a non-negative integer or null"
            elif value is not None and not 0 <= value <= 10**15:
                errors[name] = "must be between 0 and 10^15"
            else:
                out[name] = value
        elif name == "reset_interval":
            if value is not None and (not isinstance(value, str) or value not in PERIOD_ALIASES):
                errors[name] = "expected daily, weekly, monthly or null"
            else:
                out[name] = None if value is None else PERIOD_ALIASES[value]
        elif name == "enforce_zdr":
            if not isinstance(value, bool):
                errors[name] = "expected true or false"
            else:
                out[name] = value
        elif name == "action":
            if value not in ACTIONS:
                errors[name] = "expected block, throttle or route"
            else:
                out[name] = value
    if errors:
        raise ValidationError("invalid guardrail", errors)
    return out


def create(data: Any, *, now: float | None = None) -> Guardrail:
    changes = _check(data, creating=True)
    g = Guardrail(id=new_id(), name=changes.pop("name"), created_at=now or time.time())
    g = replace(g, **changes)
    _check_route(g)
    return g


def update(g: Guardrail, data: Any, *, now: float | None = None) -> Guardrail:
    changes = _check(data, creating=False)
    out = replace(g, updated_at=now or time.time(), **changes)
    _check_route(out)
    return out


def _check_route(g: Guardrail) -> None:
    if g.action == "route" and g.route_target is None:
        raise ValidationError(
            "invalid guardrail", {"route_target": "required when action is route"}
        )
