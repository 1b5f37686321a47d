"""Alert rules evaluated by a running ``tollhouse serve``: a failing, then slow upstream
on 127.0.0.1 fires error-rate and latency rules once each to a real receiver (signed;
Slack-shaped for a Slack target), nothing more while they stay true, a resolved message
when traffic is healthy again; several gateways sharing a store and Redis fire once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.gateway import GatewayProcess, Stack
from tests.support.prom import parse
from tests.support.receiver import Receiver
from tests.support.upstream import Upstream

from tollhouse.events.signing import verify

ADMIN = "adm_" + "alerts" * 6
INTERVAL = 0.2
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


def alert_stack(directory: Path, upstream: Upstream, **extra: Any) -> Stack:
    return Stack(
        directory,
        upstream,
        admin_key=ADMIN,
        webhooks={"allow_private": ["127.0.0.1"]},
        alerts={"interval_s": INTERVAL},
        **extra,
    )


@pytest.fixture
def stack(tmp_path: Path, upstream: Upstream) -> Iterator[Stack]:
    s = alert_stack(tmp_path, upstream)
    with s.gateway:
        yield s


class Api:
    def __init__(self, base_url: str, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30)
        self.admin = {"Authorization": f"Bearer {ADMIN}"}

    async def create(self, kind: str, body: dict[str, Any]) -> str:
        r = await self.client.post(f"/v1/workspaces/default/{kind}", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        rid: str = r.json()["data"]["id"]
        return rid

    async def chat(self, n: int) -> list[int]:
        codes = []
        for _ in range(n):
            r = await self.client.post(
                "/v1/chat/completions", json=CHAT, headers=self.stack.headers()
            )
            codes.append(r.status_code)
        return codes


def alerts(rx: Receiver, path: str = "/hook") -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in rx.requests if r.path == path]


async def until(rx: Receiver, check: Any, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def of_rule(rx: Receiver, rid: str) -> list[str]:
    return [a["event"] for a in alerts(rx) if a["data"]["ruleId"] == rid]


def slack_texts(rx: Receiver) -> list[str]:
    return [a["text"] for a in alerts(rx, "/slack")]


async def quiet_rounds(n: int = 5) -> None:
    """Let the evaluator run ``n`` more rounds."""
    await asyncio.sleep(n * INTERVAL + 0.3)


async def test_error_rate_and_latency_fire_once_and_resolve(
    stack: Stack, upstream: Upstream
) -> None:
    async with Receiver() as rx:
        api = Api(stack.gateway.base_url, stack)
        hook = await api.create(
            "deliveries",
            {"name": "hook", "type": "webhook", "config": {"url": rx.url, "secret": "whsec"}},
        )
        slack = await api.create(
            "deliveries",
            {"name": "ops", "type": "slack", "config": {"webhook_url": rx.url_for("/slack")}},
        )
        errors = await api.create(
            "alert-rules",
            {
                "name": "Upstream errors",
                "condition": {"metric": "error_rate", "threshold": 0.5, "window_seconds": 60},
                "delivery_targets": [hook, slack],
                "severity": "critical",
            },
        )
        slow = await api.create(
            "alert-rules",
            {
                "name": "High Latency",
                "condition": {"metric": "latency", "threshold_ms": 300, "window_seconds": 60},
                "delivery_targets": [hook],
                "severity": "high",
            },
        )
        upstream.fail_next(500, times=1000)
        assert set(await api.chat(6)) == {502}
        await until(rx, lambda: of_rule(rx, errors) == ["alert.fired"])
        await until(rx, lambda: len(slack_texts(rx)) == 1)
        fired = next(a for a in alerts(rx) if a["data"]["ruleId"] == errors)
        assert fired["data"]["value"] == 1.0 and 1 <= fired["data"]["requests"] <= 6
        assert fired["data"]["severity"] == "critical" and fired["teamId"] == "default"
        req = next(r for r in rx.requests if r.path == "/hook")
        verify("whsec", req.headers, req.body)
        slack_body = alerts(rx, "/slack")[0]
        assert "event" not in slack_body and "data" not in slack_body
        assert slack_body["text"].startswith(":rotating_light: Alert firing: Upstream errors")
        assert {b["type"] for b in slack_body["blocks"]} >= {"section", "context"}

        await quiet_rounds()  # still failing: deduplicated
        assert of_rule(rx, errors) == ["alert.fired"] and of_rule(rx, slow) == []

        upstream.heal()  # healthy again: 6 of 13 failed is under the threshold
        assert set(await api.chat(7)) == {200}
        await until(rx, lambda: of_rule(rx, errors) == ["alert.fired", "alert.resolved"])
        resolved = alerts(rx)[-1]
        assert resolved["data"]["firedEventId"] == fired["id"]
        await until(rx, lambda: len(slack_texts(rx)) == 2)
        assert slack_texts(rx)[1].startswith(":white_check_mark: Alert resolved: Upstream errors")

        upstream.options(latency_ms=600)  # one slow answer is the p95 of 14
        assert await api.chat(1) == [200]
        await until(rx, lambda: of_rule(rx, slow) == ["alert.fired"])
        latency = [a for a in alerts(rx) if a["data"]["ruleId"] == slow][0]["data"]
        assert latency["metric"] == "latency" and latency["value"] >= 600
        assert latency["threshold"] == 300 and latency["unit"] == "ms"
        await quiet_rounds()
        assert of_rule(rx, slow) == ["alert.fired"]

        upstream.options(latency_ms=0)  # twenty fast ones push it out of the p95
        assert set(await api.chat(20)) == {200}
        await until(rx, lambda: of_rule(rx, slow) == ["alert.fired", "alert.resolved"])
        await quiet_rounds()
        assert of_rule(rx, errors) == ["alert.fired", "alert.resolved"]
        assert of_rule(rx, slow) == ["alert.fired", "alert.resolved"]
        assert len(slack_texts(rx)) == 2

        r = await api.client.get("/v1/workspaces/default/incidents", headers=api.admin)
        sources = sorted((i["source"]["ref"], i["severity"]) for i in r.json()["data"])
        assert sources == sorted([(errors, "critical"), (slow, "high")])

        async def sent() -> tuple[float | None, float | None]:
            s = parse((await api.client.get("/metrics")).text)
            fired = s.get(("tollhouse_alerts_total", frozenset({("event", "fired")})))
            resolved = s.get(("tollhouse_alerts_total", frozenset({("event", "resolved")})))
            return fired, resolved

        async with asyncio.timeout(15):  # the worker's counts reach /metrics
            while await sent() != (2, 2):
                await asyncio.sleep(0.1)
        await api.client.aclose()


@pytest.fixture
def replicas(
    tmp_path: Path, upstream: Upstream, redis_url: str
) -> Iterator[tuple[Stack, GatewayProcess]]:
    """Two gateways on the same store and Redis, the second with two workers."""
    s = alert_stack(tmp_path, upstream, counters=redis_url)
    with s.gateway, GatewayProcess(s.config_path, tmp_path, workers=2) as other:
        yield s, other


async def test_several_gateways_fire_once(
    replicas: tuple[Stack, GatewayProcess], upstream: Upstream
) -> None:
    s, other = replicas
    async with Receiver() as rx:
        api, other_api = Api(s.gateway.base_url, s), Api(other.base_url, s)
        hook = await api.create(
            "deliveries", {"name": "hook", "type": "webhook", "config": {"url": rx.url}}
        )
        rule = await api.create(
            "alert-rules",
            {
                "name": "Errors",
                "condition": {"metric": "error_rate", "threshold": 0.5, "window_seconds": 60},
                "delivery_targets": [hook],
            },
        )
        upstream.fail_next(500, times=1000)
        assert await api.chat(2) + await other_api.chat(2) == [502] * 4
        await until(rx, lambda: of_rule(rx, rule) == ["alert.fired"])
        await quiet_rounds(10)  # three evaluators, one message
        assert of_rule(rx, rule) == ["alert.fired"]

        # The first gateway stops (handing back the lease if it held it); the other
        # one carries on from the stored state: one resolved message, no new firing.
        await asyncio.to_thread(s.gateway.stop)
        upstream.heal()
        assert await other_api.chat(5) == [200] * 5  # 4 of 9 failed
        await until(rx, lambda: of_rule(rx, rule) == ["alert.fired", "alert.resolved"])
        await quiet_rounds(10)
        assert of_rule(rx, rule) == ["alert.fired", "alert.resolved"]
        await api.client.aclose()
        await other_api.client.aclose()
