"""The deterministic mock provider: same input, same answer; options and error injection."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tollhouse.config import ProviderConfig
from tollhouse.errors import ConfigError, ProviderError, UpstreamHTTPError
from tollhouse.providers import Call, build_provider
from tollhouse.providers.mock import MockEngine, MockProvider, http_app

BODY = {"model": "mock-1", "messages": [{"role": "user", "content": "hello there"}]}


def provider(**options: object) -> MockProvider:
    p = build_provider(ProviderConfig(name="m", kind="mock", options=dict(options)))
    assert isinstance(p, MockProvider)
    return p


async def test_deterministic_completion_and_usage() -> None:
    p = provider(reply="one two three")
    a = await p.chat(Call(dict(BODY), None, "mock-1"))
    b = await p.chat(Call(dict(BODY), None, "mock-1"))
    assert a.data is not None and b.data is not None
    assert a.data["choices"] == b.data["choices"]
    assert a.data["id"] == b.data["id"]
    assert a.data["choices"][0]["message"]["content"] == "one two three"
    assert a.data["usage"]["completion_tokens"] == 3
    assert a.data["usage"]["prompt_tokens"] == MockEngine.prompt_tokens(BODY)
    assert orjson.loads(a.body) == a.data


async def test_stream_chunks_and_usage_only_when_asked() -> None:
    p = provider(reply="a b c d e f", chunks=3)
    events = [e async for e in await p.chat_stream(Call({**BODY, "stream": True}, None, "m"))]
    assert events[-1] == b"data: [DONE]\n\n"
    contents = [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert "".join(c or "" for c in contents) == "a b c d e f"
    assert len([c for c in contents if c]) == 3
    assert b'"usage"' not in b"".join(events)
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    events = [e async for e in await p.chat_stream(Call(body, None, "m"))]
    final = orjson.loads(events[-2][6:])
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == 6


async def test_error_injection_every_nth() -> None:
    p = provider(error_status=503, error_every=2)
    await p.chat(Call(dict(BODY), None, "m"))
    with pytest.raises(ProviderError):
        await p.chat(Call(dict(BODY), None, "m"))
    await p.chat(Call(dict(BODY), None, "m"))
    q = provider(error_status=429)
    with pytest.raises(UpstreamHTTPError) as err:
        await q.chat(Call(dict(BODY), None, "m"))
    assert err.value.upstream_status == 429


async def test_per_request_override_and_tools() -> None:
    p = provider()
    body = {**BODY, "mock": {"reply": "custom"}}
    reply = await p.chat(Call(body, None, "m"))
    assert reply.data is not None
    assert reply.data["choices"][0]["message"]["content"] == "custom"
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    reply = await p.chat(Call({**BODY, "tools": tools}, None, "m"))
    assert reply.data is not None
    choice = reply.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    with pytest.raises(UpstreamHTTPError):
        await p.chat(Call({**BODY, "mock": {"latency_ms": "slow"}}, None, "m"))


def test_bad_options_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"providers\.m\.options\.latency_ms"):
        provider(latency_ms=-1)
    with pytest.raises(ConfigError, match=r"providers\.m\.options\.nope"):
        provider(nope=1)
    with pytest.raises(ConfigError, match="error_status"):
        provider(error_status=200)


async def test_served_over_http() -> None:
    server = TestServer(http_app({"reply": "over http"}), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            url = str(server.make_url("/v1/chat/completions"))
            async with s.post(url, data=orjson.dumps(BODY)) as r:
                data = await r.json()
            assert data["choices"][0]["message"]["content"] == "over http"
            async with s.post(url, data=orjson.dumps({**BODY, "stream": True})) as r:
                raw = await r.read()
            assert raw.endswith(b"data: [DONE]\n\n")
            async with s.post(url, data=b"{") as r:
                assert r.status == 400
    finally:
        await server.close()
