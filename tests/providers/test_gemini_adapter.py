"""The gemini adapter against a real Gemini-format HTTP upstream on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from tests.providers._helpers import arguments_of, call, config, read_stream, text_of
from tests.providers._upstreams import KEY, Upstream, gemini_upstream

from tollhouse.errors import InvalidRequest, ProviderError, UpstreamHTTPError
from tollhouse.providers.gemini import GeminiProvider

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with gemini_upstream() as up:
        yield up


@pytest.fixture
async def provider(upstream: Upstream) -> AsyncIterator[GeminiProvider]:
    p = GeminiProvider(config("gemini", upstream.url, KEY))
    await p.start()
    yield p
    await p.close()


async def test_generate_content(provider: GeminiProvider, upstream: Upstream) -> None:
    upstream.cache_read = 4
    reply = await provider.chat(
        call(
            "gemini-2.5-flash",
            temperature=0.3,
            max_tokens=50,
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there"},
            ],
        )
    )
    assert reply.data is not None
    assert reply.data["choices"][0]["message"]["content"] == "echo: Hello there"
    assert reply.data["model"] == "gemini-2.5-flash"
    assert reply.data["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    seen = upstream.last
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == KEY
    assert "key" not in seen.query
    assert seen.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert seen.body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 50}


async def test_tool_round_trip_keeps_the_thought_signature(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    first = await provider.chat(call("g", tools=[WEATHER]))
    assert first.data is not None
    message = first.data["choices"][0]["message"]
    assert first.data["choices"][0]["finish_reason"] == "tool_calls"
    (tc,) = message["tool_calls"]
    assert tc["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    history = [
        {"role": "user", "content": "Weather?"},
        message,
        {"role": "tool", "tool_call_id": tc["id"], "content": "18C"},
    ]
    second = await provider.chat(call("g", tools=[WEATHER], messages=history))
    assert second.data is not None
    assert second.data["choices"][0]["message"]["content"] == "echo: 18C"
    model_turn = upstream.last.body["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == "c2ln"


@pytest.mark.parametrize("include_usage", [True, False])
async def test_stream(provider: GeminiProvider, upstream: Upstream, include_usage: bool) -> None:
    c = call("g", stream=True, stream_options={"include_usage": include_usage})
    chunks, done = await read_stream(await provider.chat_stream(c))
    assert done
    assert upstream.last.path == "/v1beta/models/g:streamGenerateContent"
    assert upstream.last.query == {"alt": "sse"}
    assert text_of(chunks) == "echo: Hello there"
    assert bool([c for c in chunks if c.get("usage")]) is include_usage
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1


async def test_stream_tool_call(provider: GeminiProvider) -> None:
    chunks, done = await read_stream(
        await provider.chat_stream(call("g", stream=True, tools=[WEATHER]))
    )
    assert done
    assert arguments_of(chunks) == {0: '{"city":"Paris"}'}


async def test_stream_cut_before_finish_is_provider_error(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.cut_after = 1
    with pytest.raises(ProviderError):
        await read_stream(await provider.chat_stream(call("g", stream=True)))


async def test_embeddings(provider: GeminiProvider, upstream: Upstream) -> None:
    reply = await provider.embeddings(
        call("text-embedding-004", input=["ab", "abcd"], dimensions=2)
    )
    assert reply.data is not None
    assert [d["embedding"][0] for d in reply.data["data"]] == [2.0, 4.0]
    assert upstream.last.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert upstream.last.body["requests"][0]["outputDimensionality"] == 2
    with pytest.raises(InvalidRequest):
        await provider.embeddings(call("text-embedding-004", input=[[1, 2, 3]]))


async def test_errors(upstream: Upstream) -> None:
    bad = GeminiProvider(config("gemini", upstream.url, "nope"))
    await bad.start()
    try:
        with pytest.raises(UpstreamHTTPError) as info:
            await bad.chat(call("g"))
        assert info.value.upstream_status == 403
    finally:
        await bad.close()
    upstream.fail_status = 503
    good = GeminiProvider(config("gemini", upstream.url, KEY))
    await good.start()
    try:
        with pytest.raises(ProviderError):
            await good.chat(call("g"))
    finally:
        await good.close()
