"""The official SDKs through a running ``tollhouse serve``, across provider formats.

- ``anthropic`` SDK -> ``/v1/messages`` -> an OpenAI-compatible upstream;
- ``openai`` SDK -> ``/v1/chat/completions`` -> an Anthropic-format upstream;
- ``openai`` SDK -> ``/v1/responses`` -> translated to chat (Anthropic upstream) or
  passed through (an ``openai`` upstream that serves the Responses API itself).
All upstreams are real HTTP servers on 127.0.0.1 (``tests/providers/_upstreams.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.e2e._gateway import Running, gateway
from tests.providers._upstreams import (
    KEY,
    Upstream,
    anthropic_upstream,
    azure_upstream,
    gemini_upstream,
    openai_upstream,
)

from tollhouse.store import open_store

WEATHER_A = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WEATHER_O: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[Upstream, Upstream]]:
    with openai_upstream() as oai, anthropic_upstream() as anth:
        yield oai, anth


@pytest.fixture(scope="module")
def others() -> Iterator[tuple[Upstream, Upstream]]:
    with gemini_upstream() as gem, azure_upstream() as az:
        yield gem, az


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory,
    ups: tuple[Upstream, Upstream],
    others: tuple[Upstream, Upstream],
) -> Iterator[Running]:
    oai, anth = ups
    gem, az = others
    config = {
        "providers": {
            "oai": {"kind": "openai_compatible", "base_url": oai.url, "api_key": KEY},
            "native": {"kind": "openai", "base_url": oai.url, "api_key": KEY},
            "anth": {"kind": "anthropic", "base_url": anth.url, "api_key": KEY},
            "gem": {"kind": "gemini", "base_url": gem.url, "api_key": KEY},
            "az": {"kind": "azure", "base_url": az.url, "api_key": KEY},
        },
        "models": {
            "gpt-echo": {"deployments": [{"provider": "oai", "model": "echo-up"}]},
            "gpt-native": {"deployments": [{"provider": "native", "model": "native-up"}]},
            "claude-echo": {"deployments": [{"provider": "anth", "model": "claude-up"}]},
            "gemini-echo": {"deployments": [{"provider": "gem", "model": "gemini-up"}]},
            "azure-echo": {"deployments": [{"provider": "az", "model": "deploy-1"}]},
        },
        "pricing": {
            "gpt-echo": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            "claude-echo": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
            "gpt-native": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
    }
    with gateway(tmp_path_factory.mktemp("gw"), config) as running:
        yield running


@pytest.fixture
def claude(gw: Running) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=gw.key, max_retries=0) as client:
        yield client


@pytest.fixture
def oai_client(gw: Running) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0) as client:
        yield client


# -- anthropic SDK -> /v1/messages -> OpenAI-compatible upstream -----------------------------


def test_messages_non_stream(claude: anthropic.Anthropic, ups: tuple[Upstream, Upstream]) -> None:
    raw = claude.messages.with_raw_response.create(
        model="gpt-echo",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello there"}],
    )
    msg = raw.parse()
    assert raw.headers["x-gate-provider"] == "oai"
    assert float(raw.headers["x-gate-cost"]) > 0
    assert msg.id == "msg_" + raw.headers["x-gate-request-id"]
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.model == "gpt-echo"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "echo: Hello there"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens == 3
    sent = ups[0].last.body
    assert sent["model"] == "echo-up"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 100


def test_messages_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="gpt-echo", max_tokens=100, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == "echo: one two three"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    assert final.usage.input_tokens > 0


def test_messages_tools_round_trip(
    claude: anthropic.Anthropic, ups: tuple[Upstream, Upstream]
) -> None:
    first = claude.messages.create(
        model="gpt-echo",
        max_tokens=100,
        tools=[WEATHER_A],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    assert ups[0].last.body["tools"][0]["function"]["name"] == "get_weather"
    second = claude.messages.create(
        model="gpt-echo",
        max_tokens=100,
        tools=[WEATHER_A],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}],
            },
        ],
    )
    assert second.content[0].text == "echo: 18C"  # type: ignore[union-attr]
    sent = ups[0].last.body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": use.id, "content": "18C"}
    assert sent[-2]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'


def stream_weather(
    claude: anthropic.Anthropic, model: str, max_tokens: int
) -> anthropic.types.Message:
    """The final message of a streamed "Weather?" offering the weather tool."""
    with claude.messages.stream(
        model=model,
        max_tokens=max_tokens,
        tools=[WEATHER_A],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        return stream.get_final_message()


def test_messages_stream_tools(claude: anthropic.Anthropic) -> None:
    final = stream_weather(claude, "gpt-echo", 100)
    assert final.stop_reason == "tool_use"
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.input == {"city": "Paris"}


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/messages", "gpt-echo"),
        ("/v1/messages", "claude-echo"),
        ("/v1/responses", "claude-echo"),
    ],
)
def test_client_disconnect_cancels_the_upstream(
    gw: Running, ups: tuple[Upstream, Upstream], path: str, model: str
) -> None:
    up = ups[0] if model == "gpt-echo" else ups[1]
    up.cancelled.clear()
    up.event_delay = 0.3
    long = " ".join(["word"] * 60)
    body: dict[str, Any] = {"model": model, "stream": True}
    if path == "/v1/messages":
        body.update(max_tokens=200, messages=[{"role": "user", "content": long}])
    else:
        body.update(max_output_tokens=200, input=long)
    try:
        with httpx.stream(
            "POST", gw.url + path, json=body, headers={"x-api-key": gw.key}, timeout=10
        ) as r:
            assert r.status_code == 200
            next(r.iter_raw())
        assert up.cancelled.wait(5), "the upstream never saw the cancel"
    finally:
        up.event_delay = 0.0


def test_count_tokens(claude: anthropic.Anthropic, ups: tuple[Upstream, Upstream]) -> None:
    seen = len(ups[0].seen)
    plain = claude.messages.count_tokens(
        model="gpt-echo", messages=[{"role": "user", "content": "How many tokens is this?"}]
    )
    tooled = claude.messages.count_tokens(
        model="gpt-echo",
        tools=[WEATHER_A],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "How many tokens is this?"}],
    )
    assert 0 < plain.input_tokens < tooled.input_tokens
    assert len(ups[0].seen) == seen  # counted locally, no upstream call
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])


def test_messages_errors(gw: Running, claude: anthropic.Anthropic) -> None:
    with (
        anthropic.Anthropic(base_url=gw.url, api_key="gk_nope", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError),
    ):
        bad.messages.create(
            model="gpt-echo", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model="gpt-echo",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    assert "thinking" in str(info.value)
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    # bearer auth works too, and malformed JSON is a 400, never a 500
    r = httpx.post(
        f"{gw.url}/v1/messages", content=b"{", headers={"authorization": f"Bearer {gw.key}"}
    )
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["code"] == "invalid_request"


def test_messages_to_anthropic_upstream_go_through_as_is(
    claude: anthropic.Anthropic, ups: tuple[Upstream, Upstream]
) -> None:
    ups[1].cache_read = 40
    system: Any = [
        {"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral"}}
    ]
    raw = claude.messages.with_raw_response.create(
        model="claude-echo",
        max_tokens=50,
        system=system,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Hi"}],
    )
    msg = raw.parse()
    assert raw.headers["x-gate-provider"] == "anth"
    assert float(raw.headers["x-gate-cost"]) > 0
    assert msg.content[0].text == "echo: Hi"  # type: ignore[union-attr]
    assert msg.model == "claude-echo"
    assert msg.usage.cache_read_input_tokens == 40
    seen = ups[1].last
    assert seen.headers["x-api-key"] == KEY
    assert seen.body["system"] == system
    assert seen.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert seen.body["model"] == "claude-up"
    with claude.messages.stream(
        model="claude-echo", max_tokens=50, messages=[{"role": "user", "content": "a b"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: a b"
    assert final.usage.output_tokens == 3 and final.usage.cache_read_input_tokens == 40
    ups[1].cache_read = 0


# -- openai SDK -> /v1/chat/completions -> Anthropic upstream -----------------------------


def test_openai_sdk_against_anthropic_upstream(
    oai_client: openai.OpenAI, ups: tuple[Upstream, Upstream]
) -> None:
    raw = oai_client.chat.completions.with_raw_response.create(
        model="claude-echo", messages=[{"role": "user", "content": "Hello there"}]
    )
    done = raw.parse()
    assert raw.headers["x-gate-provider"] == "anth"
    assert done.choices[0].message.content == "echo: Hello there"
    assert done.usage is not None and done.usage.completion_tokens == 3
    assert ups[1].last.body["model"] == "claude-up"
    assert ups[1].last.headers["anthropic-version"]


def test_openai_sdk_stream_against_anthropic_upstream(oai_client: openai.OpenAI) -> None:
    stream = oai_client.chat.completions.create(
        model="claude-echo",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_openai_sdk_stream_without_usage_hides_it(oai_client: openai.OpenAI) -> None:
    chunks = list(
        oai_client.chat.completions.create(
            model="claude-echo", messages=[{"role": "user", "content": "x"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_openai_sdk_tools_against_anthropic_upstream(oai_client: openai.OpenAI) -> None:
    done = oai_client.chat.completions.create(
        model="claude-echo", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_O]
    )
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert done.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    stream = oai_client.chat.completions.create(
        model="claude-echo",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_O],
        stream=True,
    )
    args = "".join(
        tc.function.arguments or ""
        for c in stream
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function is not None
    )
    assert args == '{"city": "Paris"}'


def test_openai_sdk_unsupported_parameter_is_400(oai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai_client.chat.completions.create(
            model="claude-echo", messages=[{"role": "user", "content": "x"}], logit_bias={"1": 1}
        )
    assert "logit_bias" in str(info.value)


# -- openai SDK -> /v1/responses ---------------------------------------------------------------


def test_responses_translated_for_anthropic(
    oai_client: openai.OpenAI, ups: tuple[Upstream, Upstream]
) -> None:
    resp = oai_client.responses.create(
        model="claude-echo", input="Hello there", instructions="Be brief."
    )
    assert resp.output_text == "echo: Hello there"
    assert resp.status == "completed"
    assert resp.usage is not None and resp.usage.output_tokens == 3
    assert ups[1].last.body["system"] == [{"type": "text", "text": "Be brief."}]


def test_responses_stream_translated(oai_client: openai.OpenAI) -> None:
    with oai_client.responses.stream(model="gpt-echo", input="one two") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: one two"
    assert final.output_text == "echo: one two"
    assert final.usage is not None and final.usage.total_tokens > 0


def test_responses_tools_translated(oai_client: openai.OpenAI) -> None:
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "parameters": WEATHER_O["function"]["parameters"],
    }
    resp = oai_client.responses.create(model="claude-echo", input="Weather?", tools=[tool])
    (call,) = [o for o in resp.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == '{"city":"Paris"}'
    follow = oai_client.responses.create(
        model="claude-echo",
        tools=[tool],
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C"},
        ],
    )
    assert follow.output_text == "echo: 18C"


def test_responses_pass_through_to_openai(
    oai_client: openai.OpenAI, ups: tuple[Upstream, Upstream]
) -> None:
    resp = oai_client.responses.create(
        model="gpt-native", input="hi", previous_response_id="resp_x"
    )
    assert resp.output_text == "native: hi"
    seen = ups[0].last
    assert seen.path == "/v1/responses"
    assert seen.body["model"] == "native-up" and seen.body["previous_response_id"] == "resp_x"
    with oai_client.responses.stream(model="gpt-native", input="yo") as stream:
        final = stream.get_final_response()
    assert final.output_text == "native: yo"


def test_responses_unsupported_on_translated_path(oai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        oai_client.responses.create(model="claude-echo", input="x", previous_response_id="resp_1")


# -- openai and anthropic SDKs -> Gemini and Azure upstreams -----------------------------------


@pytest.mark.parametrize("model", ["gemini-echo", "azure-echo"])
def test_openai_sdk_against_gemini_and_azure(
    oai_client: openai.OpenAI, others: tuple[Upstream, Upstream], model: str
) -> None:
    raw = oai_client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert raw.parse().choices[0].message.content == "echo: Hello there"
    assert raw.headers["x-gate-provider"] == ("gem" if model == "gemini-echo" else "az")
    chunks = list(
        oai_client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "a b"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    gem, az = others
    if model == "gemini-echo":
        assert gem.last.path == "/v1beta/models/gemini-up:streamGenerateContent"
    else:
        assert az.last.path == "/openai/deployments/deploy-1/chat/completions"


def test_anthropic_sdk_against_gemini(claude: anthropic.Anthropic) -> None:
    final = stream_weather(claude, "gemini-echo", 50)
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.input == {"city": "Paris"} and final.stop_reason == "tool_use"


# -- metering: every dialect and path leaves a priced spend row ----------------------------------


def _spend_row(db: str, request_id: str) -> Any:
    async def get() -> Any:
        store = open_store(db)
        await store.open()
        try:
            for _ in range(100):
                row = await store.get_generation(request_id)
                if row is not None:
                    return row
                await asyncio.sleep(0.05)
            return None
        finally:
            await store.close()

    return asyncio.run(get())


@pytest.mark.parametrize(
    ("path", "model", "stream", "provider"),
    [
        ("/v1/messages", "gpt-echo", False, "oai"),
        ("/v1/messages", "gpt-echo", True, "oai"),
        ("/v1/messages", "claude-echo", True, "anth"),
        ("/v1/responses", "claude-echo", True, "anth"),
        ("/v1/responses", "gpt-native", False, "native"),
        ("/v1/chat/completions", "claude-echo", True, "anth"),
    ],
)
def test_spend_rows(gw: Running, path: str, model: str, stream: bool, provider: str) -> None:
    body: dict[str, Any] = {"model": model, "stream": stream}
    if path == "/v1/messages":
        body.update(max_tokens=50, messages=[{"role": "user", "content": "count me"}])
    elif path == "/v1/responses":
        body.update(input="count me")
    else:
        body.update(messages=[{"role": "user", "content": "count me"}])
    with httpx.stream(
        "POST", gw.url + path, json=body, headers={"authorization": f"Bearer {gw.key}"}, timeout=10
    ) as r:
        r.read()
        assert r.status_code == 200, r.text
        request_id = r.headers["x-gate-request-id"]
    row = _spend_row(gw.db, request_id)
    assert row is not None, "no spend row"
    assert (row.provider, row.model, row.streamed, row.status) == (provider, model, stream, 200)
    assert row.prompt_tokens > 0 and row.completion_tokens > 0
    assert row.cost_micros > 0
