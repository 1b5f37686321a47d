"""Failover policies: validation, switching on a crossed condition, switching back
(in process, fake clock; the HTTP path is in test_failover_http.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tollhouse.config import parse_config
from tollhouse.errors import NotFound, ValidationError
from tollhouse.events.types import Event
from tollhouse.routing.failover import policy_json
from tollhouse.routing.router import Router

CONFIG: dict[str, Any] = {
    "providers": {
        "primary": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
        "backup": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
    },
    "models": {
        "prod-chat": {
            "deployments": [
                {"provider": "primary", "model": "m1"},
                {"provider": "backup", "model": "m2"},
            ]
        }
    },
    "routing": {"failover_probe_ms": 1000, "breaker": {"failures": 50, "min_requests": 50}},
}
POLICY = {
    "route_id": "prod-chat",
    "primary_endpoint": "primary",
    "fallback_endpoints": ["backup"],
    "conditions": {"latency_threshold_ms": 200, "error_rate_threshold": 0.5},
}


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[Router, Clock, list[Event]]:
    clock, events = Clock(), []
    r = Router(parse_config(CONFIG), clock=clock, emit=events.append, rng=lambda: 0.99)
    return r, clock, events


def order(r: Router) -> list[str]:
    return [t.provider for t in r.plan("prod-chat", {"model": "prod-chat"}, lambda m: True)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"route_id": "nope"}, "route_id"),
        ({"route_id": None}, "route_id"),
        ({"primary_endpoint": "other"}, "primary_endpoint"),
        ({"fallback_endpoints": []}, "fallback_endpoints"),
        ({"fallback_endpoints": ["primary"]}, "fallback_endpoints[0]"),
        ({"fallback_endpoints": [3]}, "fallback_endpoints[0]"),
        ({"conditions": {"latency_threshold_ms": -1}}, "conditions.latency_threshold_ms"),
        ({"conditions": {"error_rate_threshold": 1.5}}, "conditions.error_rate_threshold"),
        ({"conditions": {}}, "conditions"),
        ({"conditions": []}, "conditions"),
    ],
)
def test_invalid_policies_are_422_with_fields(change: dict[str, Any], field: str) -> None:
    r, _, _ = make()
    with pytest.raises(ValidationError) as info:
        r.policies.create("ws1", {**POLICY, **change})
    assert field in info.value.fields


def test_create_list_delete_per_workspace() -> None:
    r, _, _ = make()
    p = r.policies.create("ws1", {**POLICY, "fallback_endpoints": [{"id": "backup/m2"}]})
    assert p.id.startswith("failover-") and p.fallback_endpoints == ("backup/m2",)
    assert [x.id for x in r.policies.of_workspace("ws1")] == [p.id]
    assert r.policies.of_workspace("ws2") == []
    with pytest.raises(NotFound):
        r.policies.delete("ws2", p.id)
    r.policies.delete("ws1", p.id)
    assert not r.policies


def test_latency_crossing_switches_traffic_and_recovery_switches_back() -> None:
    r, clock, events = make()
    p = r.policies.create("ws1", POLICY)
    primary, backup = r.registry.targets("prod-chat")
    assert order(r)[0] == "primary"
    r.record_success(primary, 0.05)
    assert p.status == "active" and not events
    r.record_success(primary, 0.9)  # EWMA 0.3*900 + 0.7*50 = 305 ms > 200 ms
    assert p.status == "failed_over"
    assert events[-1].type == "provider.failover"
    assert events[-1].data["action"] == "failover" and events[-1].data["to"] == "backup"
    assert order(r) == ["backup", "primary"]
    body = policy_json(p, r.registry, lambda i: r.board.get(i))
    assert body["status"] == "failed_over" and body["current_endpoint"] == "backup"
    assert body["fallback_endpoints"] == [{"id": "backup", "status": "healthy"}]
    clock.t += 1.0  # probe interval: the primary goes first once
    assert order(r) == ["primary", "backup"]
    assert order(r) == ["backup", "primary"]
    r.record_success(primary, 0.5)  # a slow probe: still failed over
    assert p.status == "failed_over"
    r.record_success(primary, 0.02)
    assert p.status == "active" and events[-1].data["action"] == "recovered"
    assert order(r)[0] == "primary"
    assert len(events) == 2


def test_error_rate_crossing_switches() -> None:
    r, _, events = make()
    p = r.policies.create("ws1", {**POLICY, "conditions": {"error_rate_threshold": 0.5}})
    primary, _ = r.registry.targets("prod-chat")
    r.record_success(primary, 0.01)
    r.record_failure(primary, "500")
    assert p.status == "active"  # fewer than 3 outcomes in the window
    r.record_failure(primary, "500")
    assert p.status == "failed_over" and "error rate" in (p.reason or "")
    assert events[0].data["routeId"] == "prod-chat"
