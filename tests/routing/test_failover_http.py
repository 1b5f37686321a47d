"""Retries, fallbacks, breakers and failover policies against real HTTP upstreams on
127.0.0.1 that fail on demand (the gateway runs in process; upstreams are real servers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.routing._flaky import Flaky, Gate, dead_url, gateway, provider
from tests.support.receiver import Receiver

CHAT: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def ups() -> Iterator[tuple[Flaky, Flaky, Flaky]]:
    with Flaky() as a, Flaky() as b, Flaky() as c:
        yield a, b, c


Two = tuple[Flaky, Flaky, Gate]


@pytest.fixture
async def two(tmp_path: Path, ups: tuple[Flaky, Flaky, Flaky]) -> AsyncIterator[Two]:
    """Upstreams ``a`` and ``b`` and a gateway over ``two_deployments(a, b)``."""
    a, b, _ = ups
    async with gateway(tmp_path, two_deployments(a, b)) as g:
        yield a, b, g


def providers(**ups: Flaky) -> dict[str, Any]:
    """The ``providers`` section: one OpenAI-compatible provider per named upstream."""
    return {name: provider(up.url) for name, up in ups.items()}


def two_deployments(a: Flaky, b: Flaky, **extra: Any) -> dict[str, Any]:
    """``chat`` on provider ``a`` first (``order``-free: weights 1000 : 1), then ``b``."""
    return {
        "providers": providers(a=a, b=b),
        "models": {
            "chat": {
                "deployments": [
                    {"provider": "a", "model": "m-a", "weight": 1000000},
                    {"provider": "b", "model": "m-b", "weight": 1},
                ]
            }
        },
        **extra,
    }


def reply(body: bytes) -> Any:
    return orjson.loads(body)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retried_on_the_same_deployment(two: Two, status: int) -> None:
    a, b, g = two
    a.script(("status", status))
    code, headers, body = await g.chat(CHAT)
    assert code == 200, body
    assert headers["x-gate-provider"] == "a" and headers["x-gate-attempts"] == "2"
    assert len(a.requests) == 2 and b.requests == []
    assert a.requests[-1].json["model"] == "m-a"


async def test_retries_exhausted_fall_over_to_the_next_deployment(two: Two) -> None:
    a, b, g = two
    a.script(("status", 503), ("status", 502), ("status", 500))
    code, headers, body = await g.chat(CHAT)
    assert code == 200, body
    assert headers["x-gate-provider"] == "b" and headers["x-gate-attempts"] == "4"
    assert len(a.requests) == 3 and len(b.requests) == 1
    assert b.requests[0].json["model"] == "m-b"
    row = await g.generation(headers["x-gate-request-id"])
    assert row.provider == "b" and row.upstream_model == "m-b" and row.status == 200


async def test_429_waits_for_retry_after(two: Two) -> None:
    a, b, g = two
    a.script(("status", 429, {"Retry-After": "1"}))
    started = time.monotonic()
    code, headers, _ = await g.chat(CHAT)
    waited = time.monotonic() - started
    assert code == 200 and headers["x-gate-provider"] == "a"
    assert headers["x-gate-attempts"] == "2"
    assert 0.95 <= waited < 3.0
    assert b.requests == []


async def test_429_with_a_long_retry_after_moves_on_at_once(two: Two) -> None:
    a, b, g = two
    a.script(("status", 429, {"Retry-After": "120"}))
    started = time.monotonic()
    code, headers, _ = await g.chat(CHAT)
    assert time.monotonic() - started < 1.0
    assert code == 200 and headers["x-gate-provider"] == "b"
    assert len(a.requests) == 1


async def test_429_everywhere_passes_the_last_answer_back(two: Two) -> None:
    a, b, g = two
    a.always = b.always = ("status", 429, {"Retry-After": "0"})
    code, headers, body = await g.chat(CHAT)
    assert code == 429 and reply(body)["error"]["message"] == "upstream 429"
    assert headers["retry-after"] == "0"
    assert headers["x-gate-attempts"] == "6"  # 3 tries on each deployment


@pytest.mark.parametrize("status", [400, 401, 403, 422])
async def test_client_errors_are_final(two: Two, status: int) -> None:
    a, b, g = two
    a.script(("status", status))
    code, headers, body = await g.chat(CHAT)
    assert code == status and reply(body)["error"]["message"] == f"upstream {status}"
    assert headers["x-gate-attempts"] == "1"
    assert len(a.requests) == 1 and b.requests == []


async def test_connection_refused_and_no_headers_fall_over(
    tmp_path: Path, ups: tuple[Flaky, Flaky, Flaky]
) -> None:
    a, b, _ = ups
    config = {
        "providers": {"dead": provider(dead_url()), **providers(a=a, b=b)},
        "models": {
            "chat": {
                "deployments": [
                    {"provider": "dead", "model": "m"},
                    {"provider": "a", "model": "m"},
                    {"provider": "b", "model": "m"},
                ]
            }
        },
    }
    async with gateway(tmp_path, config) as g:
        a.always = ("hang",)
        body = {**CHAT, "provider": {"order": ["dead", "a", "b"]}}
        started = time.monotonic()
        code, headers, out = await g.chat(body)
        assert code == 200, out
        assert headers["x-gate-provider"] == "b"
        assert headers["x-gate-attempts"] == "7"  # 3 refused, 3 timed out, 1 answer
        assert len(a.requests) == 3
        assert time.monotonic() - started < 5.0  # read_timeout 0.5 s per try
        health = {d["id"]: d for d in g.gw.router.health()}
        assert health["dead/m"]["failures"] == 3 and health["dead/m"]["state"] == "open"
        assert health["b/m"]["successes"] == 1 and health["b/m"]["latency_ms"] is not None
        assert health["b/m"]["throughput_tps"] > 0  # completion tokens/s of the answer


async def test_dropped_connection_is_retried(two: Two) -> None:
    a, b, g = two
    a.script(("drop",))
    code, headers, _ = await g.chat(CHAT)
    assert code == 200 and headers["x-gate-provider"] == "a"
    assert headers["x-gate-attempts"] == "2"


async def test_stream_fails_over_before_its_first_byte(two: Two) -> None:
    a, b, g = two
    a.always = ("status", 503)
    code, headers, body = await g.chat({**CHAT, "stream": True})
    assert code == 200 and headers["x-gate-provider"] == "b"
    assert headers["x-gate-attempts"] == "4"
    events = [e for e in body.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(r.json["stream_options"]["include_usage"] for r in b.requests)
    row = await g.generation(headers["x-gate-request-id"])
    assert row.provider == "b" and row.streamed and row.completion_tokens > 0


async def test_stream_cut_after_the_first_byte_is_an_sse_error_not_a_failover(two: Two) -> None:
    a, b, g = two
    a.cut_after = 3
    body = {**CHAT, "stream": True, "mock": {"reply": "one two three four five six"}}
    code, headers, out = await g.chat(body)
    assert code == 200 and headers["x-gate-provider"] == "a"
    events = [e for e in out.decode().split("\n\n") if e]
    assert len(events) == 4
    assert reply(events[-1][len("data: ") :].encode())["error"]["code"] == "provider_error"
    assert b.requests == [] and len(a.requests) == 1
    row = await g.generation(headers["x-gate-request-id"])
    assert row.status == 502 and row.provider == "a"
    assert row.completion_tokens > 0  # what was relayed is recorded
    assert g.gw.router.board.get("a/m-a").failures_total == 1


async def test_breaker_opens_fast_fails_probes_and_closes(
    tmp_path: Path, ups: tuple[Flaky, Flaky, Flaky]
) -> None:
    a, b, _ = ups
    config = two_deployments(a, b)
    config["routing"] = {
        "retries": 0,
        "backoff_base_ms": 1,
        "breaker": {"failures": 3, "min_requests": 1000, "cooldown_ms": 300},
    }
    async with gateway(tmp_path, config) as g:
        a.always = ("status", 500)  # a fails 100 %
        for _ in range(3):
            code, headers, _ = await g.chat(CHAT)
            assert code == 200 and headers["x-gate-provider"] == "b"
        assert len(a.requests) == 3
        breaker = g.gw.router.board.get("a/m-a")
        assert breaker.state == "open"
        for _ in range(5):  # fast-fail: a is not called at all
            code, headers, _ = await g.chat(CHAT)
            assert headers["x-gate-provider"] == "b" and headers["x-gate-attempts"] == "1"
        assert len(a.requests) == 3
        await asyncio.sleep(0.35)
        code, headers, _ = await g.chat(CHAT)  # the probe fails: open again
        assert headers["x-gate-attempts"] == "2" and len(a.requests) == 4
        assert breaker.state == "open"
        a.always = None  # a recovers
        await asyncio.sleep(0.35)
        code, headers, _ = await g.chat(CHAT)  # the probe succeeds: closed
        assert headers["x-gate-provider"] == "a" and len(a.requests) == 5
        assert breaker.state == "closed"
        code, headers, _ = await g.chat(CHAT)
        assert headers["x-gate-provider"] == "a"


async def test_single_deployment_breaker_fast_fails_with_502(
    tmp_path: Path, ups: tuple[Flaky, Flaky, Flaky]
) -> None:
    a, _, _ = ups
    config = {
        "providers": providers(a=a),
        "models": {"chat": {"deployments": [{"provider": "a", "model": "m"}]}},
    }
    async with gateway(tmp_path, config) as g:
        a.always = ("status", 503)
        code, headers, body = await g.chat(CHAT)
        assert code == 502 and headers["x-gate-attempts"] == "3"
        started = time.monotonic()
        code, headers, body = await g.chat(CHAT)
        assert code == 502 and "circuit open" in reply(body)["error"]["message"]
        assert "x-gate-attempts" not in headers and len(a.requests) == 3
        assert time.monotonic() - started < 0.2


async def test_models_list_falls_through_in_order(
    tmp_path: Path, ups: tuple[Flaky, Flaky, Flaky]
) -> None:
    a, b, c = ups
    config = {
        "providers": providers(a=a, b=b, c=c),
        "models": {
            "first": {"deployments": [{"provider": "a", "model": "one"}]},
            "second": {"deployments": [{"provider": "b", "model": "two"}]},
            "third": {"deployments": [{"provider": "c", "model": "three"}]},
        },
        "routing": {"retries": 0, "breaker": {"failures": 100}},
    }
    async with gateway(tmp_path, config) as g:
        a.always = ("status", 500)
        b.always = ("status", 503)
        body = {**CHAT, "model": "first", "models": ["second", "third"]}
        code, headers, out = await g.chat(body)
        assert code == 200 and headers["x-gate-provider"] == "c"
        assert headers["x-gate-attempts"] == "3"
        sent = c.requests[-1].json
        assert sent["model"] == "three" and "models" not in sent and "provider" not in sent
        row = await g.generation(headers["x-gate-request-id"])
        assert row.model == "third" and row.provider == "c"
        b.always = None
        code, headers, _ = await g.chat(body)
        assert headers["x-gate-provider"] == "b" and headers["x-gate-attempts"] == "2"
        code, _, out = await g.chat({**body, "models": "second"})
        assert code == 400 and reply(out)["error"]["code"] == "invalid_request"


async def test_preferences_steer_the_deployment(
    tmp_path: Path, ups: tuple[Flaky, Flaky, Flaky]
) -> None:
    a, b, c = ups
    config = {
        "providers": providers(a=a, b=b, c=c),
        "models": {
            "chat": {
                "deployments": [
                    {"provider": "a", "model": "pricey"},
                    {"provider": "b", "model": "cheap"},
                    {"provider": "c", "model": "mid"},
                ]
            }
        },
        "pricing": {
            "pricey": {"input_per_mtok": 5, "output_per_mtok": 15},
            "cheap": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
            "mid": {"input_per_mtok": 1, "output_per_mtok": 2},
        },
        "routing": {"retries": 0, "supported_parameters": {"b": ["temperature"]}},
    }

    async def served_by(prefs: dict[str, Any], **extra: Any) -> str:
        code, headers, out = await g.chat({**CHAT, "provider": prefs, **extra})
        assert code == 200, out
        return headers["x-gate-provider"]

    async with gateway(tmp_path, config) as g:
        assert await served_by({"order": ["c", "a"]}) == "c"
        assert await served_by({"only": ["a"]}) == "a"
        assert await served_by({"ignore": ["a", "b"]}) == "c"
        assert await served_by({"sort": "price"}) == "b"
        assert await served_by({"max_price": {"prompt": 2}, "order": ["a", "c"]}) == "c"
        assert await served_by({"require_parameters": True, "sort": "price"}, seed=1) == "c"
        c.options(latency_ms=150)
        for _ in range(2):
            await served_by({"only": ["a"]})
            await served_by({"only": ["c"]})
            await served_by({"only": ["b"]})
        assert await served_by({"sort": "latency", "ignore": ["b"]}) == "a"
        c.options(latency_ms=0)
        # allow_fallbacks: false keeps the request on its first choice
        a.always = ("status", 500)
        code, headers, _ = await g.chat(
            {**CHAT, "provider": {"order": ["a"], "allow_fallbacks": False}}
        )
        assert code == 502 and headers["x-gate-attempts"] == "1"
        assert await served_by({"order": ["a"]}) in ("b", "c")
        code, _, out = await g.chat({**CHAT, "provider": {"only": ["nobody"]}})
        assert code == 404 and "preferences" in reply(out)["error"]["message"]
        code, _, out = await g.chat({**CHAT, "provider": {"sort": "random"}})
        assert code == 400 and reply(out)["error"]["code"] == "invalid_request"


async def test_embeddings_retry_and_fall_over(two: Two) -> None:
    a, b, g = two
    a.always = ("status", 502)
    code, headers, out = await g.chat({"model": "chat", "input": "hello"}, path="/v1/embeddings")
    assert code == 200, out
    assert headers["x-gate-provider"] == "b" and headers["x-gate-attempts"] == "4"
    assert reply(out)["data"]


async def test_failover_policy_switches_on_latency_fires_event_and_recovers(
    tmp_path: Path, ups: tuple[Flaky, Flaky, Flaky]
) -> None:
    a, b, _ = ups
    async with Receiver() as rx:
        config = two_deployments(
            a,
            b,
            webhooks={
                "endpoints": [{"url": rx.url, "secret": "whsec-test"}],
                "allow_private": ["127.0.0.1/32"],
            },
        )
        async with gateway(tmp_path, config) as g:
            policy = g.gw.router.policies.create(
                "ws1",
                {
                    "route_id": "chat",
                    "primary_endpoint": "a",
                    "fallback_endpoints": ["b"],
                    "conditions": {"latency_threshold_ms": 100},
                },
            )
            a.options(latency_ms=250)  # above the threshold
            code, headers, _ = await g.chat(CHAT)
            assert code == 200 and headers["x-gate-provider"] == "a"
            assert policy.status == "failed_over"
            for _ in range(3):  # traffic goes to the fallback
                _, headers, _ = await g.chat(CHAT)
                assert headers["x-gate-provider"] == "b"
            assert len(a.requests) == 1
            (hook,) = await rx.wait_for(1)
            event = orjson.loads(hook.body)
            assert event["event"] == "provider.failover"
            assert event["data"]["action"] == "failover" and event["data"]["from"] == "a"
            a.options(latency_ms=0)  # the primary recovers
            await asyncio.sleep(0.35)  # probe interval
            _, headers, _ = await g.chat(CHAT)  # the probe goes to the primary
            assert headers["x-gate-provider"] == "a"
            assert policy.status == "active"
            _, headers, _ = await g.chat(CHAT)
            assert headers["x-gate-provider"] == "a"
            hooks = await rx.wait_for(2)
            assert orjson.loads(hooks[1].body)["data"]["action"] == "recovered"


@pytest.mark.parametrize("stream", [False, True])
async def test_messages_and_responses_fall_over_too(two: Two, stream: bool) -> None:
    a, b, g = two
    a.always = ("status", 503)
    messages = {
        "model": "chat",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    }
    code, headers, out = await g.chat(messages, path="/v1/messages")
    assert code == 200, out
    assert headers["x-gate-provider"] == "b" and headers["x-gate-attempts"] == "4"
    if stream:
        assert b"event: message_stop" in out
    else:
        assert reply(out)["type"] == "message"
    assert all("models" not in r.json and r.json["model"] == "m-b" for r in b.requests)
    body = {"model": "chat", "input": "hello", "stream": stream, "models": ["chat"]}
    code, headers, out = await g.chat(body, path="/v1/responses")
    assert code == 200, out
    assert headers["x-gate-provider"] == "b"
