"""Every error row of the data-plane contract, against a running gateway."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from tests.support.gateway import Stack, create_key, write_config
from tests.support.upstream import Upstream

from tollhouse.store import open_store

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(stack: Stack, body: object, key: str | None = None, **kw: object) -> httpx.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        f"{stack.url}/chat/completions", content=data, headers=stack.headers(key), timeout=30, **kw
    )


def assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code
    assert err["type"] == "gate_error"
    assert isinstance(err["message"], str) and err["message"]
    assert resp.headers["x-gate-request-id"].startswith("gen-")


# -- 401 --------------------------------------------------------------------------------


def test_missing_key(stack: Stack) -> None:
    resp = httpx.post(f"{stack.url}/chat/completions", json=CHAT)
    assert_error(resp, 401, "invalid_key")


@pytest.mark.parametrize(
    "key",
    ["gk_nope", "sk-abc", "gk_" + "A" * 34, "Bearer", "gk_" + "é" * 34],
)
def test_malformed_or_unknown_key(stack: Stack, key: str) -> None:
    resp = httpx.post(
        f"{stack.url}/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {key}".encode()},  # type: ignore[dict-item]
    )
    assert_error(resp, 401, "invalid_key")
    assert key not in resp.text


def test_wrong_scheme(stack: Stack) -> None:
    resp = httpx.post(
        f"{stack.url}/chat/completions", json=CHAT, headers={"Authorization": f"Basic {stack.key}"}
    )
    assert_error(resp, 401, "invalid_key")


def test_disabled_and_expired_keys(stack: Stack) -> None:
    disabled, _ = create_key(stack.store_url, "off", disabled=True)
    expired, _ = create_key(stack.store_url, "old", expires_at=time.time() - 10)
    time.sleep(1.2)  # key cache refresh
    assert_error(post(stack, CHAT, disabled), 401, "invalid_key")
    assert_error(post(stack, CHAT, expired), 401, "invalid_key")


def test_revoked_key_stops_within_a_second(stack: Stack) -> None:
    raw, record = create_key(stack.store_url, "soon-revoked")
    deadline = time.monotonic() + 3
    while post(stack, CHAT, raw).status_code != 200:
        assert time.monotonic() < deadline, "new key never accepted"
        time.sleep(0.05)

    async def revoke() -> None:
        store = open_store(stack.store_url)
        await store.open()
        try:
            await store.update_key(record.hash, {"disabled": True})
        finally:
            await store.close()

    asyncio.run(revoke())
    revoked_at = time.monotonic()
    while post(stack, CHAT, raw).status_code == 200:
        time.sleep(0.02)
    assert time.monotonic() - revoked_at < 1.0
    assert_error(post(stack, CHAT, raw), 401, "invalid_key")


# -- 403 / 404 -------------------------------------------------------------------------


def test_model_not_allowed(stack: Stack) -> None:
    raw, _ = create_key(stack.store_url, "only-mock", models=["mock-*"])
    time.sleep(1.2)
    assert_error(post(stack, CHAT, raw), 403, "model_not_allowed")
    ok = post(stack, {**CHAT, "model": "mock-1"}, raw)
    assert ok.status_code == 200


def test_model_not_found(stack: Stack) -> None:
    assert_error(post(stack, {**CHAT, "model": "gpt-9"}), 404, "model_not_found")


# -- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"text"',
        b"null",
        b'{"messages": [{"role": "user", "content": "x"}]}',
        b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}',
        b'{"model": "gpt-4o-mini"}',
        b'{"model": "gpt-4o-mini", "messages": []}',
        b'{"model": "gpt-4o-mini", "messages": "hi"}',
        b'{"model": "gpt-4o-mini", "messages": [1]}',
        b'{"model": "gpt-4o-mini", "messages": [{"content": "no role"}]}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream": "yes"}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "max_tokens": "10"}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "max_tokens": -1}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "temperature": "hot"}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "tools": {}}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream_options": 1}',
    ],
)
def test_invalid_request(stack: Stack, body: bytes) -> None:
    assert_error(post(stack, body), 400, "invalid_request")


# -- 413 -------------------------------------------------------------------------------


def test_payload_too_large_declared(tmp_path_factory: pytest.TempPathFactory) -> None:
    with Upstream() as up:
        s = Stack(tmp_path_factory.mktemp("small"), up, server={"max_body_bytes": 4096})
        with s.gateway:
            big = {**CHAT, "messages": [{"role": "user", "content": "x" * 10_000}]}
            assert_error(post(s, big), 413, "payload_too_large")

            def chunks() -> Iterator[bytes]:
                data = orjson.dumps(big)
                for i in range(0, len(data), 1000):
                    yield data[i : i + 1000]

            resp = httpx.post(f"{s.url}/chat/completions", content=chunks(), headers=s.headers())
            assert_error(resp, 413, "payload_too_large")
            assert up.requests == []
            small = post(s, CHAT)
            assert small.status_code == 200


# -- 502 / 4xx pass-through / 503 ------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_upstream_5xx_is_provider_error(stack: Stack, upstream: Upstream, status: int) -> None:
    upstream.fail_next(status, times=3)  # the first try and routing's 2 retries
    resp = post(stack, CHAT)
    assert_error(resp, 502, "provider_error")
    assert resp.headers["x-gate-provider"] == "up"
    assert resp.headers["x-gate-attempts"] == "3"


@pytest.mark.parametrize("status", [400, 404, 422, 429])
def test_upstream_4xx_passed_back(stack: Stack, upstream: Upstream, status: int) -> None:
    body = orjson.dumps({"error": {"message": "upstream says no", "code": "nope"}})
    upstream.fail_next(status, body, times=3 if status == 429 else 1)  # 429 is retried
    resp = post(stack, CHAT)
    assert resp.status_code == status
    assert resp.content == body


def test_upstream_timeout_and_unreachable(tmp_path_factory: pytest.TempPathFactory) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    with Upstream() as up:
        d = tmp_path_factory.mktemp("timeouts")
        s = Stack(d, up)
        s.config["providers"]["up"]["read_timeout"] = 0.5
        s.config["providers"]["dead"] = {
            "kind": "openai_compatible",
            "base_url": f"http://127.0.0.1:{dead_port}/v1",
        }
        s.config["models"]["dead"] = {"deployments": [{"provider": "dead", "model": "x"}]}
        s.config["providers"]["nokey"] = {"kind": "openai"}
        s.config["models"]["gpt-4o"] = {"deployments": [{"provider": "nokey", "model": "gpt-4o"}]}
        write_config(d, s.config)
        with s.gateway:
            up.hang = True
            started = time.monotonic()
            assert_error(post(s, CHAT), 502, "provider_error")
            assert time.monotonic() - started < 5
            assert_error(post(s, {**CHAT, "stream": True}), 502, "provider_error")
            up.hang = False
            assert_error(post(s, {**CHAT, "model": "dead"}), 502, "provider_error")
            assert_error(post(s, {**CHAT, "model": "gpt-4o"}), 503, "no_provider_key")


def test_mid_stream_failure_is_an_sse_error(stack: Stack, upstream: Upstream) -> None:
    """Headers are out: the error arrives in-band and the stream ends."""
    upstream.cut_after = 3
    body = {**CHAT, "stream": True, "mock": {"reply": "a b c d e f g h"}}
    with httpx.stream(
        "POST", f"{stack.url}/chat/completions", json=body, headers=stack.headers(), timeout=10
    ) as resp:
        assert resp.status_code == 200
        request_id = resp.headers["x-gate-request-id"]
        text = b"".join(resp.iter_raw()).decode()
    events = [e for e in text.split("\n\n") if e]
    assert len(events) == 4
    assert orjson.loads(events[-1][len("data: ") :])["error"]["code"] == "provider_error"
    row = stack.generation(request_id)
    assert row is not None and row.status == 502 and row.error_code == "provider_error"
    assert row.completion_tokens > 0  # what was relayed before the cut is counted


# -- routes and methods ----------------------------------------------------------------


def test_unknown_route_and_method(stack: Stack) -> None:
    assert_error_plain = httpx.get(f"{stack.url}/nope")
    assert assert_error_plain.status_code == 404
    assert assert_error_plain.json()["error"]["code"] == "not_found"
    resp = httpx.get(f"{stack.url}/chat/completions")
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"


FUZZ = [
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "x"}]}]}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": null}], "n": 3}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": {"a": 1}}]}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "tools": [1, "x", {}]}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream": true, "tools": [{}]}',
    b'{"model": "", "messages": [{"role": "user"}]}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "mock": {"latency_ms": "x"}}',
    b'{"model": "embed", "input": {"a": 1}}',
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"a" * 100_000 + b'"}]}',
    b"{" * 10_000,
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user"}], "stream_options": {}}',
]


@pytest.mark.parametrize("body", FUZZ)
def test_no_input_gives_500(stack: Stack, body: bytes) -> None:
    for path in ("chat/completions", "embeddings"):
        resp = httpx.post(f"{stack.url}/{path}", content=body, headers=stack.headers(), timeout=30)
        assert resp.status_code < 500 or resp.json()["error"]["code"] == "provider_error"
        assert resp.status_code != 500, resp.text
