"""The anthropic adapter against a real Anthropic-format HTTP upstream on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from tests.providers._helpers import arguments_of, call, config, read_stream, text_of
from tests.providers._upstreams import KEY, Upstream, anthropic_upstream
from tests.support.servers import free_port

from tollhouse.errors import InvalidRequest, ProviderError, UpstreamHTTPError
from tollhouse.providers.anthropic import AnthropicProvider

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with anthropic_upstream() as up:
        yield up


@pytest.fixture
async def provider(upstream: Upstream) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider(config("anthropic", upstream.url, KEY, default_max_tokens=321))
    await p.start()
    yield p
    await p.close()


async def test_chat_sends_anthropic_headers_and_body(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    reply = await provider.chat(
        call(
            "claude-up",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there"},
            ],
        )
    )
    assert reply.data is not None
    assert orjson.loads(reply.body) == reply.data
    assert reply.data["object"] == "chat.completion"
    assert reply.data["choices"][0]["message"]["content"] == "echo: Hello there"
    assert reply.data["choices"][0]["finish_reason"] == "stop"
    assert reply.data["usage"]["completion_tokens"] == 3
    seen = upstream.last
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    assert seen.body["model"] == "claude-up"
    assert seen.body["max_tokens"] == 321
    assert seen.body["system"] == [{"type": "text", "text": "Be brief."}]
    assert "stream" not in seen.body


async def test_chat_tool_call(provider: AnthropicProvider, upstream: Upstream) -> None:
    reply = await provider.chat(call("claude-up", tools=[WEATHER]))
    assert reply.data is not None
    choice = reply.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (tc,) = choice["message"]["tool_calls"]
    assert tc["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert upstream.last.body["tools"][0]["name"] == "get_weather"


async def test_cached_tokens_reach_openai_usage(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    upstream.cache_read = 50
    reply = await provider.chat(call("claude-up"))
    assert reply.data is not None
    usage = reply.data["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 50
    assert usage["prompt_tokens"] >= 50


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream_text(
    provider: AnthropicProvider, upstream: Upstream, include_usage: bool
) -> None:
    c = call("claude-up", stream=True, stream_options={"include_usage": include_usage})
    chunks, done = await read_stream(await provider.chat_stream(c))
    assert done
    assert upstream.last.body["stream"] is True
    assert text_of(chunks) == "echo: Hello there"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert len(usage) == (1 if include_usage else 0)
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert usage[0]["completion_tokens"] == 3


async def test_stream_tool_call(provider: AnthropicProvider) -> None:
    c = call("claude-up", stream=True, tools=[WEATHER])
    chunks, done = await read_stream(await provider.chat_stream(c))
    assert done
    assert arguments_of(chunks) == {0: '{"city": "Paris"}'}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


async def test_stream_cut_midway_is_a_provider_error(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    upstream.cut_after = 4
    with pytest.raises(ProviderError):
        await read_stream(await provider.chat_stream(call("claude-up", stream=True)))


async def test_upstream_4xx_passes_back_and_5xx_is_provider_error(upstream: Upstream) -> None:
    bad = AnthropicProvider(config("anthropic", upstream.url, "wrong-key"))
    await bad.start()
    try:
        with pytest.raises(UpstreamHTTPError) as info:
            await bad.chat(call("claude-up"))
        assert info.value.upstream_status == 401
        assert b"authentication_error" in info.value.upstream_body
        assert b"wrong-key" not in info.value.upstream_body
    finally:
        await bad.close()
    good = AnthropicProvider(config("anthropic", upstream.url, KEY))
    await good.start()
    try:
        upstream.fail_status = 529
        with pytest.raises(ProviderError):
            await good.chat(call("claude-up"))
        with pytest.raises(ProviderError):
            await good.chat_stream(call("claude-up", stream=True))
    finally:
        await good.close()


async def test_connection_refused_is_provider_error() -> None:
    p = AnthropicProvider(config("anthropic", f"http://127.0.0.1:{free_port()}", KEY))
    await p.start()
    try:
        with pytest.raises(ProviderError, match="unreachable"):
            await p.chat(call("claude-up"))
    finally:
        await p.close()


async def test_unsupported_parameter_never_reaches_upstream(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    with pytest.raises(InvalidRequest, match="logit_bias"):
        await provider.chat(call("claude-up", logit_bias={"5": 1}))
    assert upstream.seen == []


async def test_drop_unsupported_option(upstream: Upstream) -> None:
    p = AnthropicProvider(config("anthropic", upstream.url, KEY, drop_unsupported=True))
    await p.start()
    try:
        reply = await p.chat(call("claude-up", logit_bias={"5": 1}, seed=4))
        assert reply.data is not None
        assert "logit_bias" not in upstream.last.body
    finally:
        await p.close()


async def test_no_embeddings(provider: AnthropicProvider) -> None:
    with pytest.raises(InvalidRequest, match="no embeddings"):
        await provider.embeddings(call("claude-up", input="x"))


def test_key_is_not_in_repr_or_has_key() -> None:
    p = AnthropicProvider(config("anthropic", "http://127.0.0.1:1", KEY))
    assert p.has_key
    assert KEY not in repr(p.config)
    assert not AnthropicProvider(config("anthropic", "http://127.0.0.1:1", None)).has_key


def test_unknown_or_bad_options_are_config_errors() -> None:
    from tollhouse.errors import ConfigError

    with pytest.raises(ConfigError, match="drop_unsuported"):
        AnthropicProvider(config("anthropic", "http://127.0.0.1:1", KEY, drop_unsuported=True))
    with pytest.raises(ConfigError, match="default_max_tokens"):
        AnthropicProvider(config("anthropic", "http://127.0.0.1:1", KEY, default_max_tokens=0))
    with pytest.raises(ConfigError, match="drop_unsupported"):
        AnthropicProvider(config("anthropic", "http://127.0.0.1:1", KEY, drop_unsupported="yes"))
