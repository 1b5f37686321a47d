"""The registry, the request's routing preferences and the plan (in process)."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest

from tollhouse.config import parse_config
from tollhouse.errors import ConfigError, InvalidRequest, NoProviderKey, NotFound
from tollhouse.routing.registry import parse_preferences
from tollhouse.routing.router import Router, parse_routing

CONFIG: dict[str, Any] = {
    "providers": {
        "cheap": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
        "fast": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
        "claude": {"kind": "anthropic", "api_key": "sk-x"},
    },
    "models": {
        "chat": {
            "aliases": ["chat-latest"],
            "deployments": [
                {"provider": "cheap", "model": "chat-small", "weight": 1, "region": "eu"},
                {"provider": "fast", "model": "chat-big", "weight": 3, "region": "us"},
                {"provider": "claude", "model": "claude-x"},
            ],
            "fallbacks": ["backup"],
        },
        "backup": {"deployments": [{"provider": "fast", "model": "backup-1"}]},
        "other": {"deployments": [{"provider": "cheap", "model": "other-1"}]},
    },
    "pricing": {
        "chat-small": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
        "chat-big": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        "claude-x": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
        "backup-1": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
        "other-1": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
    },
    "routing": {"supported_parameters": {"cheap": ["temperature"]}},
}
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def router(**kw: Any) -> Router:
    counter = itertools.count()
    values = [0.9, 0.1, 0.5, 0.3, 0.7]
    return Router(parse_config(CONFIG), rng=lambda: values[next(counter) % len(values)], **kw)


def ids(r: Router, body: dict[str, Any], allowed: Any = lambda m: True) -> list[str]:
    return [f"{t.model}:{t.provider}" for t in r.plan(body["model"], body, allowed)]


def test_registry_has_aliases_prices_and_weights() -> None:
    r = router()
    assert r.registry.lookup("chat-latest") is r.registry.lookup("chat")
    (small, big, claude) = r.registry.targets("chat-latest")
    assert (small.id, small.weight, small.region) == ("cheap/chat-small", 1, "eu")
    assert small.input_micros_per_mtok == 100_000 and big.output_micros_per_mtok == 2_000_000
    assert claude.parameters is not None and "top_k" in claude.parameters
    assert small.parameters == frozenset({"temperature"})


def test_default_plan_includes_every_deployment_then_fallback_model() -> None:
    plan = ids(router(), BODY)
    assert sorted(plan[:3]) == ["chat:cheap", "chat:claude", "chat:fast"]
    assert plan[3:] == ["backup:fast"]


def test_weights_shape_the_first_choice() -> None:
    r = Router(parse_config(CONFIG))  # real randomness
    firsts = Counter(r.plan("chat", BODY, lambda m: True)[0].provider for _ in range(2000))
    # weights 1 : 3 : 1 -> fast leads about 60 % of the time
    assert 0.5 < firsts["fast"] / 2000 < 0.7
    assert firsts["cheap"] > 250 and firsts["claude"] > 250


def test_models_list_is_tried_in_order_and_unknown_or_forbidden_names_skipped() -> None:
    body = {**BODY, "models": ["nope", "other", "backup"], "provider": {"order": ["cheap"]}}
    plan = ids(router(), body, allowed=lambda m: m != "backup")
    assert plan[0] == "chat:cheap"
    assert plan[3:] == ["other:cheap"]  # backup is not allowed for this key
    with pytest.raises(InvalidRequest):
        router().plan("chat", {**BODY, "models": "other"}, lambda m: True)


def test_order_only_ignore_allow_fallbacks() -> None:
    r = router()
    body = {**BODY, "provider": {"order": ["claude", "cheap"]}}
    assert ids(r, body)[:3] == ["chat:claude", "chat:cheap", "chat:fast"]
    body = {**BODY, "provider": {"order": ["claude", "cheap"], "allow_fallbacks": False}}
    assert ids(r, body) == ["chat:claude", "chat:cheap"]  # the order applies to backup too
    body = {**BODY, "provider": {"only": ["fast"]}}
    assert ids(r, body) == ["chat:fast", "backup:fast"]
    body = {**BODY, "provider": {"ignore": ["fast", "claude/claude-x"]}}
    assert ids(r, body) == ["chat:cheap"]
    body = {**BODY, "provider": {"allow_fallbacks": False, "sort": "price"}}
    assert ids(r, body) == ["chat:cheap", "backup:fast"]


def test_sort_price_latency_throughput() -> None:
    r = router()
    body = {**BODY, "provider": {"sort": "price"}}
    assert ids(r, body)[:3] == ["chat:cheap", "chat:fast", "chat:claude"]
    for provider, latency in (("cheap", 0.5), ("fast", 0.05), ("claude", 0.2)):
        t = next(t for t in r.registry.targets("chat") if t.provider == provider)
        r.record_success(t, latency)
        r.record_throughput(t, 100, latency * 2)
    body = {**BODY, "provider": {"sort": "latency"}}
    assert ids(r, body)[:3] == ["chat:fast", "chat:claude", "chat:cheap"]
    body = {**BODY, "provider": {"sort": {"by": "throughput"}}}
    assert ids(r, body)[:3] == ["chat:fast", "chat:claude", "chat:cheap"]


def test_max_price_and_require_parameters() -> None:
    r = router()
    body = {**BODY, "provider": {"max_price": {"prompt": 1, "completion": 2}}}
    plan = ids(r, body)
    assert sorted(plan[:2]) == ["chat:cheap", "chat:fast"] and plan[2:] == ["backup:fast"]
    body = {**BODY, "provider": {"max_price": {"prompt": 0.5}}}
    assert ids(r, body) == ["chat:cheap"]
    body = {**BODY, "top_k": 5, "provider": {"require_parameters": True}}
    assert ids(r, body) == ["chat:claude"]  # only anthropic takes top_k; backup has none
    body = {**BODY, "temperature": 0.2, "provider": {"require_parameters": True, "sort": "price"}}
    assert ids(r, body)[:3] == ["chat:cheap", "chat:fast", "chat:claude"]
    body = {**BODY, "logit_bias": {}, "provider": {"require_parameters": True, "only": ["cheap"]}}
    with pytest.raises(NotFound):
        r.plan("chat", body, lambda m: True)


def test_open_breakers_go_last_in_the_default_order() -> None:
    r = router()
    fast = next(t for t in r.registry.targets("chat") if t.provider == "fast")
    for _ in range(5):
        r.record_failure(fast, "500")
    for _ in range(20):
        assert ids(r, BODY)[2] == "chat:fast"


def test_keyless_providers_are_planned_around() -> None:
    r = router(usable=lambda p: p != "claude")
    assert "chat:claude" not in ids(r, BODY)
    r = router(usable=lambda p: False)
    with pytest.raises(NoProviderKey):
        r.plan("chat", BODY, lambda m: True)


@pytest.mark.parametrize(
    "value",
    [
        "cheap",
        {"order": "cheap"},
        {"only": [1]},
        {"ignore": [""]},
        {"allow_fallbacks": "no"},
        {"sort": "random"},
        {"max_price": 3},
        {"max_price": {"prompt": -1}},
        {"require_parameters": 1},
    ],
)
def test_bad_preferences_are_400(value: Any) -> None:
    with pytest.raises(InvalidRequest):
        parse_preferences(value)


@pytest.mark.parametrize(
    "section",
    [
        "x",
        {"retries": -1},
        {"nope": 1},
        {"breaker": {"error_rate": 2}},
        {"breaker": {"failures": 0}},
        {"breaker": []},
        {"supported_parameters": {"cheap": "temperature"}},
    ],
)
def test_bad_routing_config_is_a_config_error(section: Any) -> None:
    with pytest.raises(ConfigError):
        parse_routing(section)


def test_routing_config_values_and_unknown_provider() -> None:
    cfg = parse_routing({"retries": 1, "backoff_base_ms": 5, "breaker": {"cooldown_ms": 250}})
    assert cfg.retry.retries == 1 and cfg.retry.backoff_base_s == 0.005
    assert cfg.breaker.cooldown_s == 0.25
    with pytest.raises(ConfigError, match="unknown provider"):
        Router(parse_config({**CONFIG, "routing": {"supported_parameters": {"zz": []}}}))
