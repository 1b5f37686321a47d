"""OpenAI chat <-> Anthropic Messages translation: golden files and the 400s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.providers._golden import cases, check

from tollhouse.errors import InvalidRequest, ProviderError
from tollhouse.providers._anthropic_format import (
    anthropic_to_chat,
    chat_to_anthropic,
    chat_to_messages_response,
    messages_to_chat,
)
from tollhouse.providers._anthropic_stream import AnthropicToChat, ChatToAnthropic


@pytest.mark.parametrize(
    "path", cases("anthropic_") + cases("messages_"), ids=lambda p: Path(p).stem
)
def test_golden(path: Path) -> None:
    check(path)


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"seed": 3}, "seed"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"some_new_field": 1}, "some_new_field"),
    ],
)
def test_unsupported_parameters_are_a_clear_400(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat_to_anthropic(_chat(**extra), model="claude")
    assert info.value.status == 400
    assert info.value.code == "invalid_request"
    assert param in info.value.message
    assert info.value.body()["error"]["param"] == param


def test_drop_unsupported_drops_instead() -> None:
    out = chat_to_anthropic(_chat(n=2, seed=3, foo=1), model="claude", drop_unsupported=True)
    assert set(out) == {"model", "messages", "max_tokens"}


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "messages": "hi"},
        {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
        {"model": "m", "messages": [{"role": "system", "content": "only a system prompt"}]},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        {"model": "m", "messages": [{"role": "tool", "content": "no id"}]},
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{bad"}}],
                }
            ],
        },
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]},
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xx"}}],
                }
            ],
        },
    ],
)
def test_malformed_chat_requests_are_invalid_request(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        chat_to_anthropic(body, model="claude")


def test_consecutive_same_role_messages_merge() -> None:
    out = chat_to_anthropic(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": "c"},
            ]
        },
        model="claude",
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"},
    ]


def test_tool_choice_none_and_parallel_flag() -> None:
    assert chat_to_anthropic(_chat(tool_choice="none"), model="c")["tool_choice"] == {
        "type": "none"
    }
    assert chat_to_anthropic(_chat(parallel_tool_calls=False), model="c")["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    with pytest.raises(InvalidRequest):
        chat_to_anthropic(_chat(tool_choice="sometimes"), model="c")


def test_usage_counts_cache_reads_and_writes_in_prompt_tokens() -> None:
    resp = {
        "id": "msg",
        "content": [],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 200,
            "cache_creation_input_tokens": 30,
        },
    }
    usage = anthropic_to_chat(resp, created=0)["usage"]
    assert usage["prompt_tokens"] == 240
    assert usage["total_tokens"] == 245
    assert usage["prompt_tokens_details"] == {"cached_tokens": 200, "cache_write_tokens": 30}
    # and back: the Anthropic client sees the uncached part as input_tokens
    back = chat_to_messages_response(
        {"id": "x", "choices": [{"message": {"content": "ok"}}], "usage": usage}, model="m"
    )
    assert back["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 200,
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_stop_reasons(reason: str, finish: str) -> None:
    resp = {"id": "m", "content": [], "stop_reason": reason, "usage": {}}
    assert anthropic_to_chat(resp, created=0)["choices"][0]["finish_reason"] == finish


def test_round_trip_through_both_directions_keeps_the_conversation() -> None:
    chat = {
        "model": "m",
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "Paris?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "18C"},
        ],
    }
    back = messages_to_chat(chat_to_anthropic(chat, model="m"))
    assert back["messages"] == chat["messages"]
    assert back["max_tokens"] == 50


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"model": "m", "messages": [{"role": "system", "content": "x"}]},
        {"model": "m", "messages": [], "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": "m", "messages": [], "tools": [{"type": "web_search_20250305", "name": "s"}]},
        {"model": "m", "messages": [], "unknown": 1},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "tool_use"}]}]},
        {"model": "m", "messages": [], "tool_choice": {"type": "maybe"}},
    ],
)
def test_malformed_messages_requests_are_invalid_request(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        messages_to_chat(body)


def test_stream_error_event_raises_provider_error() -> None:
    t = AnthropicToChat(created=0)
    with pytest.raises(ProviderError, match="overloaded"):
        t.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})


def test_chat_to_anthropic_stream_without_chunks_still_closes_the_message() -> None:
    t = ChatToAnthropic(id_="msg_x", model="m")
    names = [name for name, _ in t.finish()]
    assert names == ["message_start", "message_delta", "message_stop"]
    assert t.finish() == []
