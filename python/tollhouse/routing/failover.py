"""Failover policies (self-hosted contracts: ``/v1/workspaces/:id/failover-policies``).

A policy watches a route's primary endpoint: when its latency EWMA crosses
``latency_threshold_ms`` or its error rate in the breaker window reaches
``error_rate_threshold``, traffic for the route goes to the fallback endpoints first and
``provider.failover`` fires.  While failed over, the primary gets one probe request every
``probe_interval_s``; a probe that succeeds under the latency threshold switches traffic
back (and fires ``provider.failover`` with ``action: "recovered"``).

Definitions live in each worker's memory and, when ``counters`` is Redis, in one Redis
hash that every worker reloads (``routing.shared``); the live status is each worker's
own view of its traffic.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from tollhouse.errors import NotFound, ValidationError
from tollhouse.routing.breaker import Breaker
from tollhouse.routing.registry import Registry, Target

Status = Literal["active", "failed_over"]


@dataclass(slots=True)
class FailoverPolicy:
    id: str
    workspace_id: str
    route_id: str
    primary_endpoint: str
    fallback_endpoints: tuple[str, ...]
    latency_threshold_ms: float | None
    error_rate_threshold: float | None
    created_at: str
    status: Status = "active"
    switched_at: str | None = None
    reason: str | None = None
    last_probe: float = 0.0

    def crossed(self, b: Breaker, min_requests: int) -> str | None:
        """Why the primary breaks the policy now (None: it does not)."""
        if self.latency_threshold_ms is not None and b.latency_ms is not None:
            if b.latency_ms > self.latency_threshold_ms:
                return f"latency {b.latency_ms:.0f} ms > {self.latency_threshold_ms:g} ms"
        if self.error_rate_threshold is not None and b.requests_in_window() >= min_requests:
            rate = b.error_rate()
            if rate >= self.error_rate_threshold:
                return f"error rate {rate:.2f} >= {self.error_rate_threshold:g}"
        if b.state == "open":
            return "circuit open"
        return None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _endpoint(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    return None


class FailoverPolicies:
    """Every policy of this worker, indexed by workspace and by route."""

    def __init__(
        self,
        registry: Registry,
        *,
        probe_interval_s: float = 5.0,
        min_requests: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.probe_interval_s = probe_interval_s
        self.min_requests = min_requests
        self.clock = clock
        self._policies: dict[str, FailoverPolicy] = {}

    # -- admin API -----------------------------------------------------------------------

    def create(self, workspace_id: str, data: Any) -> FailoverPolicy:
        if not isinstance(data, dict):
            raise ValidationError("body must be a JSON object", {"body": "expected an object"})
        fields: dict[str, str] = {}
        route_id = data.get("route_id")
        targets: tuple[Target, ...] = ()
        if not isinstance(route_id, str) or not route_id:
            fields["route_id"] = "required, a non-empty string"
        else:
            targets = self.registry.targets(route_id)
            if not targets:
                fields["route_id"] = f"unknown route (model) {route_id!r}"
        primary = _endpoint(data.get("primary_endpoint"))
        if primary is None:
            fields["primary_endpoint"] = "required, a provider name or deployment id"
        elif targets and not any(t.matches(primary) for t in targets):
            fields["primary_endpoint"] = f"{primary!r} is not an endpoint of {route_id!r}"
        raw_fallbacks = data.get("fallback_endpoints")
        fallbacks: list[str] = []
        if not isinstance(raw_fallbacks, list) or not raw_fallbacks:
            fields["fallback_endpoints"] = "required, a non-empty array of endpoints"
        else:
            for i, item in enumerate(raw_fallbacks):
                name = _endpoint(item)
                if name is None:
                    fields[f"fallback_endpoints[{i}]"] = "expected a provider name or id"
                elif targets and not any(t.matches(name) for t in targets):
                    fields[f"fallback_endpoints[{i}]"] = f"{name!r} is not an endpoint of route"
                elif primary is not None and name.lower() == primary.lower():
                    fields[f"fallback_endpoints[{i}]"] = "must differ from primary_endpoint"
                else:
                    fallbacks.append(name)
        conditions = data.get("conditions", {})
        latency = error_rate = None
        if not isinstance(conditions, dict):
            fields["conditions"] = "expected an object"
        else:
            lat = conditions.get("latency_threshold_ms")
            if lat is not None:
                if isinstance(lat, bool) or not isinstance(lat, int | float) or lat <= 0:
                    fields["conditions.latency_threshold_ms"] = "expected a number > 0"
                else:
                    latency = float(lat)
            err = conditions.get("error_rate_threshold")
            if err is not None:
                if isinstance(err, bool) or not isinstance(err, int | float) or not 0 < err <= 1:
                    fields["conditions.error_rate_threshold"] = "expected a number in (0, 1]"
                else:
                    error_rate = float(err)
            if not fields and latency is None and error_rate is None:
                fields["conditions"] = "set latency_threshold_ms and/or error_rate_threshold"
        if fields:
            raise ValidationError("invalid failover policy", fields)
        assert isinstance(route_id, str) and primary is not None  # noqa: S101 - checked
        policy = FailoverPolicy(
            id="failover-" + os.urandom(8).hex(),
            workspace_id=workspace_id,
            route_id=route_id,
            primary_endpoint=primary,
            fallback_endpoints=tuple(fallbacks),
            latency_threshold_ms=latency,
            error_rate_threshold=error_rate,
            created_at=_now_iso(),
        )
        self._policies[policy.id] = policy
        return policy

    def of_workspace(self, workspace_id: str) -> list[FailoverPolicy]:
        return [p for p in self._policies.values() if p.workspace_id == workspace_id]

    def get(self, workspace_id: str, policy_id: str) -> FailoverPolicy:
        p = self._policies.get(policy_id)
        if p is None or p.workspace_id != workspace_id:
            raise NotFound(f"failover policy {policy_id!r} not found")
        return p

    def export(self, p: FailoverPolicy) -> dict[str, Any]:
        """The definition of a policy (what other workers load), without live status."""
        return {
            "id": p.id,
            "workspace_id": p.workspace_id,
            "route_id": p.route_id,
            "primary_endpoint": p.primary_endpoint,
            "fallback_endpoints": list(p.fallback_endpoints),
            "latency_threshold_ms": p.latency_threshold_ms,
            "error_rate_threshold": p.error_rate_threshold,
            "created_at": p.created_at,
        }

    def load(self, definitions: list[dict[str, Any]]) -> None:
        """Replace the definitions by ``definitions`` (shared state), keeping the live
        status of policies this worker already had; routes gone from the config are
        skipped."""
        fresh: dict[str, FailoverPolicy] = {}
        for d in definitions:
            try:
                pid = str(d["id"])
                old = self._policies.get(pid)
                if old is not None:
                    fresh[pid] = old
                    continue
                if not self.registry.targets(str(d["route_id"])):
                    continue
                fresh[pid] = FailoverPolicy(
                    id=pid,
                    workspace_id=str(d["workspace_id"]),
                    route_id=str(d["route_id"]),
                    primary_endpoint=str(d["primary_endpoint"]),
                    fallback_endpoints=tuple(str(x) for x in d["fallback_endpoints"]),
                    latency_threshold_ms=d.get("latency_threshold_ms"),
                    error_rate_threshold=d.get("error_rate_threshold"),
                    created_at=str(d.get("created_at") or _now_iso()),
                )
            except (KeyError, TypeError, ValueError):
                continue  # a malformed shared entry is not this worker's problem
        self._policies = fresh

    def delete(self, workspace_id: str, policy_id: str) -> None:
        self.get(workspace_id, policy_id)
        del self._policies[policy_id]

    def discard(self, policy_id: str) -> None:
        self._policies.pop(policy_id, None)

    def __bool__(self) -> bool:
        return bool(self._policies)

    # -- data plane ----------------------------------------------------------------------

    def for_route(self, model: str) -> list[FailoverPolicy]:
        return [p for p in self._policies.values() if p.route_id == model]

    def reorder(self, model: str, targets: list[Target]) -> list[Target]:
        """The route's deployments with a failed-over policy's fallbacks first (the primary
        stays last, or first once per probe interval)."""
        for p in self.for_route(model):
            if p.status != "failed_over":
                continue
            now = self.clock()
            primary = [t for t in targets if t.matches(p.primary_endpoint)]
            rest = [t for t in targets if not t.matches(p.primary_endpoint)]
            if now - p.last_probe >= self.probe_interval_s:
                p.last_probe = now
                return primary + rest
            rank = {n.lower(): i for i, n in enumerate(p.fallback_endpoints)}

            def pos(t: Target, rank: Mapping[str, int] = rank) -> int:
                for name in (t.id.lower(), t.provider.lower()):
                    if name in rank:
                        return rank[name]
                return len(rank)

            return sorted(rest, key=pos) + primary
        return targets

    def observe(
        self, target: Target, breaker: Breaker, ok: bool, latency_s: float | None
    ) -> list[tuple[FailoverPolicy, str, str]]:
        """Re-evaluate the policies whose primary is ``target``; the transitions made
        (policy, action, reason) for the caller to announce."""
        changes: list[tuple[FailoverPolicy, str, str]] = []
        for p in self.for_route(target.model):
            if not target.matches(p.primary_endpoint):
                continue
            if p.status == "active":
                reason = p.crossed(breaker, self.min_requests)
                if reason is not None:
                    p.status, p.reason, p.switched_at = "failed_over", reason, _now_iso()
                    p.last_probe = self.clock()
                    changes.append((p, "failover", reason))
            elif ok and latency_s is not None:
                ms = latency_s * 1000.0
                if p.latency_threshold_ms is None or ms <= p.latency_threshold_ms:
                    breaker.latency_ms = ms  # the probe's latency is the current one
                    breaker.outcomes.clear()
                    reason = f"primary answered in {ms:.0f} ms"
                    p.status, p.reason, p.switched_at = "active", reason, _now_iso()
                    changes.append((p, "recovered", reason))
        return changes


def endpoint_status(breaker: Breaker | None) -> str:
    if breaker is None:
        return "healthy"
    if breaker.state == "open":
        return "down"
    if breaker.state == "half_open" or breaker.error_rate() >= 0.5:
        return "degraded"
    return "healthy"


def policy_json(
    p: FailoverPolicy, registry: Registry, breaker_of: Callable[[str], Breaker | None]
) -> dict[str, Any]:
    targets = registry.targets(p.route_id)

    def status(name: str) -> str:
        for t in targets:
            if t.matches(name):
                return endpoint_status(breaker_of(t.id))
        return "unknown"

    current = p.primary_endpoint if p.status == "active" else p.fallback_endpoints[0]
    return {
        "id": p.id,
        "workspace_id": p.workspace_id,
        "status": p.status,
        "route_id": p.route_id,
        "primary_endpoint": {"id": p.primary_endpoint, "status": status(p.primary_endpoint)},
        "fallback_endpoints": [{"id": n, "status": status(n)} for n in p.fallback_endpoints],
        "conditions": {
            "latency_threshold_ms": p.latency_threshold_ms,
            "error_rate_threshold": p.error_rate_threshold,
        },
        "current_endpoint": current,
        "switched_at": p.switched_at,
        "reason": p.reason,
        "created_at": p.created_at,
    }


__all__ = [
    "FailoverPolicies",
    "FailoverPolicy",
    "endpoint_status",
    "policy_json",
]
