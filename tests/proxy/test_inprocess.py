"""The ASGI app driven in process (no server): chunked bodies, disconnects, methods."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from tests.support.gateway import acreate_key, asgi_request, running_app

from tollhouse.app import App

CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[App, str]]:
    store = f"sqlite:///{tmp_path / 't.db'}"
    config = {
        "store": store,
        "server": {"max_body_bytes": 2048},
        "providers": {"mock": {"kind": "mock", "options": {"reply": "in process"}}},
        "models": {"mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]}},
        "pricing": {"mock-1": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
    }
    raw, _ = await acreate_key(store)
    async with running_app(config) as application:
        yield application, raw


def headers(raw: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {raw}"), ("content-type", "application/json")]


async def test_chunked_body_within_and_over_the_cap(app: tuple[App, str]) -> None:
    application, raw = app
    data = orjson.dumps(CHAT)
    parts = [data[i : i + 7] for i in range(0, len(data), 7)]
    status, out, body = await asgi_request(
        application, "POST", "/v1/chat/completions", body=parts, headers=headers(raw)
    )
    assert status == 200, body
    assert orjson.loads(body)["choices"][0]["message"]["content"] == "in process"
    assert out["x-gate-provider"] == "mock" and float(out["x-gate-cost"]) > 0
    big = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]})
    parts = [big[i : i + 512] for i in range(0, len(big), 512)]  # no Content-Length
    status, _, body = await asgi_request(
        application, "POST", "/v1/chat/completions", body=parts, headers=headers(raw)
    )
    assert status == 413 and orjson.loads(body)["error"]["code"] == "payload_too_large"


async def test_disconnect_cancels_and_records(app: tuple[App, str]) -> None:
    application, raw = app
    body = orjson.dumps({**CHAT, "mock": {"latency_ms": 5000}})
    status, _, _ = await asgi_request(
        application,
        "POST",
        "/v1/chat/completions",
        body=body,
        headers=headers(raw),
        disconnect_after=0.1,
    )
    assert status == 0  # nothing was sent: the request was cancelled
    gw = application.gw
    await gw.spend.stop()  # flush
    rows = await gw.store.activity(None, 0)
    assert rows  # the cancelled request was recorded


async def test_wrong_method_and_unknown_path(app: tuple[App, str]) -> None:
    application, raw = app
    status, _, body = await asgi_request(application, "GET", "/v1/chat/completions")
    assert status == 405 and orjson.loads(body)["error"]["code"] == "method_not_allowed"
    status, _, body = await asgi_request(application, "GET", "/v1/embeddings/x")
    assert status == 404 and orjson.loads(body)["error"]["code"] == "not_found"
