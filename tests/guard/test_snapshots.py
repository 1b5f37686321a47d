"""Snapshots through the data plane against a real endpoint on 127.0.0.1: the id comes
back in ``x-gate-snapshot-id``; a slow, failing or refused endpoint never fails the
request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from tests.support.gateway import add_key, asgi_request, running_app
from tests.support.receiver import Receiver, Reply

from tollhouse.app import App

CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]}
SNAP = orjson.dumps({"snapshotId": "snap_abc123", "commitHash": "a1b2c3d4", "branch": "main"})


class Env:
    def __init__(self, app: App, rx: Receiver, keys: dict[str, str]) -> None:
        self.app, self.rx, self.keys = app, rx, keys

    async def chat(self, key: str, *extra: tuple[str, str]) -> tuple[int, dict[str, str]]:
        headers = [("authorization", f"Bearer {self.keys[key]}"), *extra]
        status, out, _ = await asgi_request(
            self.app, "POST", "/v1/chat/completions", body=orjson.dumps(CHAT), headers=headers
        )
        return status, out


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with Receiver(default=Reply(200, body=SNAP)) as rx:
        store = f"sqlite:///{tmp_path / 's.db'}"
        config = {
            "store": store,
            "providers": {"mock": {"kind": "mock"}},
            "models": {"mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]}},
            "webhooks": {"allow_private": ["127.0.0.0/8"]},
        }
        url = rx.url_for("/snapshot")
        keys = {
            "always": await add_key(
                store, "always", snapshot={"url": url, "enabled": True, "timeout_s": 0.3}
            ),
            "on-demand": await add_key(store, "on-demand", snapshot={"url": url}),
            "none": await add_key(store, "none"),
            "internal": await add_key(
                store, "internal", snapshot={"url": "http://169.254.169.254/x", "enabled": True}
            ),
        }
        async with running_app(config) as app:
            yield Env(app, rx, keys)


async def test_snapshot_success_and_protocol(env: Env) -> None:
    status, headers = await env.chat("always", ("x-gate-session-id", "sess_1"))
    assert status == 200 and headers["x-gate-snapshot-id"] == "snap_abc123"
    (req,) = await env.rx.wait_for(1)
    body = orjson.loads(req.body)
    assert req.path == "/snapshot" and body["action"] == "snapshot"
    assert body["virtualKey"] == "always" and body["sessionId"] == "sess_1"
    assert body["model"] == "mock-1" and body["timestamp"].endswith("Z")
    # The id is stored with the request: its spend row carries it.
    await env.app.gw.spend.flush()
    row = await env.app.gw.store.get_generation(headers["x-gate-request-id"])
    assert row is not None and row.metadata == {"snapshot_id": "snap_abc123"}
    status, headers = await env.chat("on-demand")
    assert status == 200 and "x-gate-snapshot-id" not in headers
    await env.app.gw.spend.flush()
    row = await env.app.gw.store.get_generation(headers["x-gate-request-id"])
    assert row is not None and row.metadata == {}
    status, headers = await env.chat("on-demand", ("x-gate-snapshot", "true"))
    assert headers["x-gate-snapshot-id"] == "snap_abc123"
    status, headers = await env.chat("none", ("x-gate-snapshot", "true"))
    assert status == 200 and "x-gate-snapshot-id" not in headers  # no endpoint configured
    assert len(env.rx.requests) == 2


async def test_slow_failing_or_refused_endpoint_never_fails_the_request(env: Env) -> None:
    env.rx.plan(Reply(200, body=SNAP, delay=2.0))
    t = time.perf_counter()
    status, headers = await env.chat("always")
    assert status == 200 and "x-gate-snapshot-id" not in headers
    assert time.perf_counter() - t < 1.5  # bounded by the key's 0.3 s timeout
    env.rx.plan(Reply(500), Reply(200, body=b"not json"))
    for _ in range(2):
        status, headers = await env.chat("always")
        assert status == 200 and "x-gate-snapshot-id" not in headers
    status, headers = await env.chat("internal")  # SSRF guard: metadata address refused
    assert status == 200 and "x-gate-snapshot-id" not in headers
