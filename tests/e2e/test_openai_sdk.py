"""The official ``openai`` SDK against a running ``tollhouse serve`` (base URL + key only)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from tests.support.gateway import Stack
from tests.support.upstream import Upstream

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


_OPEN: list[openai.OpenAI] = []


def client(stack: Stack, key: str | None = None) -> openai.OpenAI:
    c = openai.OpenAI(base_url=stack.url, api_key=key or stack.key, max_retries=0)
    _OPEN.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def test_sync_non_stream(stack: Stack, upstream: Upstream) -> None:
    raw = client(stack).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, n=2
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == upstream.engine.options.reply
    assert len(completion.choices) == 2
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sent = upstream.requests[-1]
    assert sent.json["temperature"] == 0.2 and sent.json["n"] == 2
    assert sent.headers["authorization"] == "Bearer sk-up"  # the provider key, not ours
    cost = float(raw.headers["x-gate-cost"])
    usage = completion.usage
    expected = (usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.60) / 1e6
    assert cost == pytest.approx(expected, abs=2e-6)
    assert raw.headers["x-gate-provider"] == "up"
    assert float(raw.headers["x-gate-overhead-ms"]) >= 0
    row = stack.generation(raw.headers["x-gate-request-id"])
    assert row is not None
    assert row.prompt_tokens == usage.prompt_tokens
    assert row.completion_tokens == usage.completion_tokens
    assert row.cost_micros == round(cost * 1e6)
    assert row.key_hash == stack.record.hash and row.provider == "up"


def test_unknown_fields_pass_through_untouched(stack: Stack, upstream: Upstream) -> None:
    client(stack).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        response_format={"type": "json_object"},
        extra_body={"custom_field": {"nested": [1, 2]}, "provider": {"order": ["x"]}},
    )
    sent = upstream.requests[-1].json
    assert sent["custom_field"] == {"nested": [1, 2]}
    assert sent["response_format"] == {"type": "json_object"}
    assert "provider" not in sent  # a routing preference: the gateway consumes it


def test_upstream_model_name_is_rewritten(stack: Stack, upstream: Upstream) -> None:
    client(stack).chat.completions.create(model="renamed", messages=MESSAGES)
    assert upstream.requests[-1].json["model"] == "upstream-name"


def test_sync_stream_hides_usage_chunk(stack: Stack, upstream: Upstream) -> None:
    stream = client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == upstream.engine.options.reply
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    assert all(c.choices for c in chunks)
    # ... but the gateway asked the upstream for it
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


def test_sync_stream_with_usage_has_cost(stack: Stack, upstream: Upstream) -> None:
    with client(stack).chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ) as resp:
        request_id = resp.headers["x-gate-request-id"]
        chunks = list(resp.parse())
    final = chunks[-1]
    assert final.usage is not None and final.choices == []
    cost = final.usage.model_extra["cost"]  # type: ignore[index]
    expected = (final.usage.prompt_tokens * 0.15 + final.usage.completion_tokens * 0.60) / 1e6
    assert cost == pytest.approx(expected, abs=2e-6)
    row = stack.generation(request_id)
    assert row is not None and row.streamed
    assert row.completion_tokens == final.usage.completion_tokens
    assert row.cost_micros == round(cost * 1e6)
    assert row.finish_reason == "stop"


def test_stream_without_upstream_usage_is_counted(stack: Stack, upstream: Upstream) -> None:
    upstream.no_usage = True
    with client(stack).chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ) as resp:
        request_id = resp.headers["x-gate-request-id"]
        chunks = list(resp.parse())
    final = chunks[-1]
    assert final.usage is not None and final.choices == []
    assert final.usage.prompt_tokens > 0 and final.usage.completion_tokens > 0
    row = stack.generation(request_id)
    assert row is not None and row.completion_tokens == final.usage.completion_tokens
    assert row.cost_micros > 0


def test_non_stream_without_upstream_usage_is_counted(stack: Stack, upstream: Upstream) -> None:
    upstream.no_usage = True
    raw = client(stack).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.parse().usage is None  # the upstream's body is passed through as is
    row = stack.generation(raw.headers["x-gate-request-id"])
    assert row is not None and row.prompt_tokens > 0 and row.completion_tokens > 0
    assert float(raw.headers["x-gate-cost"]) > 0


def test_tool_calls_non_stream_and_stream(stack: Stack, upstream: Upstream) -> None:
    c = client(stack)
    completion = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS)
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"mock": True}  # type: ignore[union-attr]
    assert upstream.requests[-1].json["tools"] == TOOLS
    chunks = list(
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, stream=True)
    )
    names = [
        tc.function.name
        for ch in chunks
        for tc in (ch.choices[0].delta.tool_calls or [])
        if ch.choices and tc.function
    ]
    assert names == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_embeddings_and_models(stack: Stack, upstream: Upstream) -> None:
    c = client(stack)
    raw = c.embeddings.with_raw_response.create(model="embed", input=["a", "b"])
    result = raw.parse()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert upstream.requests[-1].json["model"] == "text-embedding-3-small"
    assert float(raw.headers["x-gate-cost"]) >= 0
    ids = {m.id for m in c.models.list()}
    assert {"gpt-4o-mini", "mock-1", "embed"} <= ids


def test_sdk_errors_are_typed(stack: Stack, upstream: Upstream) -> None:
    bad = client(stack, "gk_wrong")
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert auth.value.code == "invalid_key"
    with pytest.raises(openai.NotFoundError):
        client(stack).chat.completions.create(model="nope", messages=MESSAGES)
    upstream.fail_next(503, times=3)  # routing retries twice
    with pytest.raises(openai.APIStatusError) as failed:
        client(stack).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert failed.value.status_code == 502


async def test_async_client_stream_and_not(stack: Stack, upstream: Upstream) -> None:
    c = openai.AsyncOpenAI(base_url=stack.url, api_key=stack.key, max_retries=0)
    try:
        completion = await c.chat.completions.create(model="mock-1", messages=MESSAGES)
        assert completion.choices[0].message.content
        stream = await c.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts = [ch async for ch in stream]
        assert parts[-1].usage is not None
        text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
        assert text == upstream.engine.options.reply
    finally:
        await c.close()


def test_generation_lookup_matches_request_id(stack: Stack) -> None:
    raw = client(stack).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    request_id = raw.headers["x-gate-request-id"]
    assert stack.generation(request_id) is not None  # written by the background writer
    resp = httpx.get(f"{stack.url}/generation", params={"id": request_id}, headers=stack.headers())
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["id"] == request_id
    assert data["total_cost"] == pytest.approx(float(raw.headers["x-gate-cost"]), abs=1e-6)
