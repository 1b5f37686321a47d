"""Token counting through ``tollhouse.native``: the model map, exact counts against the
reference encoder, the cookbook's chat and tool examples, images, estimates and bad input.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollhouse import native
from tollhouse.errors import InvalidRequest

ENCODINGS = ["o200k_base", "cl100k_base"]

# The OpenAI cookbook's example conversation ("How to count tokens with tiktoken").
COOKBOOK_MESSAGES: list[dict[str, str]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]

COOKBOOK_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]

COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def png_data_url(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def jpeg_data_url(width: int, height: int) -> str:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + bytes(10)
    raw = b"\xff\xd8" + app0 + sof + b"\xff\xd9"
    return "data:image/jpeg;base64," + base64.b64encode(raw).decode()


def cookbook_reference(model: str, messages: list[dict[str, str]]) -> int:
    """The cookbook's ``num_tokens_from_messages`` in plain Python."""
    enc = native.encoding_for_model(model)
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            total += native.count_encoding_tokens(enc, value)
            if key == "name":
                total += 1
    return total


# -- the model map -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-5-nano", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo-2024-04-09", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("claude-3-5-sonnet-latest", "estimate:anthropic"),
        ("claude-sonnet-4-5", "estimate:anthropic"),
        ("gemini-2.5-pro", "estimate:gemini"),
        ("my-fine-tune", "o200k_base"),
        ("", "o200k_base"),
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert native.encoding_for_model(model) == encoding


# -- text -----------------------------------------------------------------------------------


def test_known_text_counts() -> None:
    # OpenAI cookbook: "tiktoken is great!" is 6 tokens in cl100k_base.
    assert native.count_text_tokens("gpt-4", "tiktoken is great!") == 6
    assert native.count_encoding_tokens("cl100k_base", "tiktoken is great!") == 6
    assert native.count_text_tokens("gpt-4o", "") == 0
    # Special-token text is ordinary text, as the API counts it.
    assert native.count_text_tokens("gpt-4o", "<|endoftext|>") > 1


def test_unknown_encoding_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        native.count_encoding_tokens("p50k_base", "hi")


def test_estimates_scale_the_cl100k_count() -> None:
    text = "Estimating Claude and Gemini from cl100k_base, rounded up. " * 20
    base = native.count_encoding_tokens("cl100k_base", text)
    assert native.count_text_tokens("claude-3-haiku", text) == math.ceil(base * 5 / 4)
    assert native.count_text_tokens("gemini-1.5-flash", text) == math.ceil(base * 11 / 10)


def test_large_text_matches_reference() -> None:
    text = ("Lorem ipsum dolor sit amet, 12345 consectetur\n\n\tadipiscing — élite 🚀. " * 3000)[
        :200_000
    ]
    for enc in ENCODINGS:
        assert native.count_encoding_tokens(enc, text) == native.reference_token_count(enc, text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_unicode_matches_reference(text: str) -> None:
    for enc in ENCODINGS:
        assert native.count_encoding_tokens(enc, text) == native.reference_token_count(enc, text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_count_bounds(a: str, b: str) -> None:
    for enc in ENCODINGS:
        whole = native.count_encoding_tokens(enc, a + b)
        # Every token is at least one byte, and a non-empty text has a token.
        assert whole <= len((a + b).encode())
        assert (whole > 0) == bool(a + b)
        # BPE is not subadditive ("TRUE" + "RB" is 4 tokens, the parts 1 + 1), so the
        # concatenation is held against the reference encoder instead of a bound.
        assert whole == native.reference_token_count(enc, a + b)


# -- chat requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_cookbook_messages(model: str, expected: int) -> None:
    # The prompt_tokens OpenAI's API reported for the cookbook's example.
    assert native.count_messages_tokens(model, COOKBOOK_MESSAGES) == expected
    body = orjson.dumps({"model": model, "messages": COOKBOOK_MESSAGES})
    assert native.count_chat_tokens(model, body) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_cookbook_tools(model: str, expected: int) -> None:
    assert native.count_messages_tokens(model, COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS) == expected
    body = orjson.dumps({"messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS})
    assert native.count_chat_tokens(model, body) == expected


plain_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text()},
        optional={"name": st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1)},
    ),
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(plain_messages, st.sampled_from(["gpt-4o", "gpt-4", "gpt-3.5-turbo", "o3-mini"]))
def test_messages_match_cookbook_reference(messages: list[dict[str, str]], model: str) -> None:
    assert native.count_messages_tokens(model, messages) == cookbook_reference(model, messages)


def test_tool_calls_count_name_and_arguments() -> None:
    call = {
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_current_weather", "arguments": '{"location": "Paris"}'},
    }
    with_call = [{"role": "assistant", "content": None, "tool_calls": [call]}]
    without = [{"role": "assistant", "content": None}]
    extra = native.count_messages_tokens("gpt-4o", with_call) - native.count_messages_tokens(
        "gpt-4o", without
    )
    enc = "o200k_base"
    assert extra == 3 + native.count_encoding_tokens(
        enc, "get_current_weather"
    ) + native.count_encoding_tokens(enc, '{"location": "Paris"}')


def test_images_by_tile_rule() -> None:
    def image(url: str, detail: str | None = None) -> list[dict[str, Any]]:
        image_url: dict[str, str] = {"url": url}
        if detail is not None:
            image_url["detail"] = detail
        parts = [{"type": "text", "text": "What is this?"}]
        return [
            {"role": "user", "content": [*parts, {"type": "image_url", "image_url": image_url}]}
        ]

    base = native.count_messages_tokens(
        "gpt-4o", [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
    )
    assert native.count_messages_tokens("gpt-4o", image(png_data_url(1024, 1024), "high")) == (
        base + 765
    )
    assert native.count_messages_tokens("gpt-4o", image(png_data_url(2048, 4096))) == base + 1105
    assert native.count_messages_tokens("gpt-4o", image(jpeg_data_url(4000, 3000), "low")) == (
        base + 85
    )
    assert native.count_messages_tokens("gpt-4o", image(jpeg_data_url(500, 400), "auto")) == (
        base + 85 + 170
    )
    # An https URL has no readable size: counted as a 1024x1024 image at high detail.
    assert native.count_messages_tokens("gpt-4o", image("https://example.com/cat.png")) == (
        base + 765
    )
    mini_base = native.count_messages_tokens(
        "gpt-4o-mini", [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
    )
    assert native.count_messages_tokens("gpt-4o-mini", image(png_data_url(512, 512), "high")) == (
        mini_base + 2833 + 5667
    )


def test_estimated_chat_for_claude() -> None:
    text_parts = native.count_messages_tokens("gpt-4", COOKBOOK_MESSAGES)
    assert native.count_messages_tokens("claude-3-opus", COOKBOOK_MESSAGES) == math.ceil(
        text_parts * 5 / 4
    )
    anthropic_body = {
        "system": "Be brief.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this."},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": png_data_url(1000, 1000).split(",", 1)[1],
                        },
                    },
                ],
            }
        ],
        "tools": [{"name": "lookup", "description": "Look up.", "input_schema": {}}],
    }
    count = native.count_chat_tokens("claude-3-5-sonnet", orjson.dumps(anthropic_body))
    assert count > 1334  # the image alone is 1000*1000/750 tokens


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("messages", [None, "hello", {"role": "user"}, 3, ("a",)])
def test_non_list_messages_are_invalid(messages: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        native.count_messages_tokens("gpt-4o", messages)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"[]", b'"x"', b'{"model": "gpt-4o"}', b'{"messages": {"a": 1}}'],
)
def test_bad_bodies_are_invalid(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        native.count_chat_tokens("gpt-4o", body)


json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["role", "content", "name", "type", "text", "image_url", "url", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, max_size=5), st.none() | st.lists(json_values, max_size=3))
def test_odd_shapes_never_crash(messages: list[Any], tools: list[Any] | None) -> None:
    for model in ["gpt-4o", "gpt-4", "claude-3-haiku", "gemini-2.0-flash"]:
        assert native.count_messages_tokens(model, messages, tools) >= 3
        body = (
            orjson.dumps({"messages": messages, "tools": tools}, option=orjson.OPT_NON_STR_KEYS)
            if _json_safe(messages, tools)
            else None
        )
        if body is not None:
            assert native.count_chat_tokens(model, body) >= 3


def _json_safe(*values: Any) -> bool:
    try:
        orjson.dumps(values)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def test_odd_python_objects_never_crash() -> None:
    loop: list[Any] = []
    loop.append(loop)
    odd = [
        {"role": "user", "content": loop},
        {"role": b"user", "content": 10**40},
        {1: "int key", "content": float("nan")},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": object()}}]},
    ]
    assert native.count_messages_tokens("gpt-4o", odd, [{"function": {"name": 5}}]) > 3


def test_warm_up() -> None:
    native.warm_up_tokenizers()
    assert native.count_text_tokens("gpt-4o", "warm") == 1


def test_large_inputs_release_the_gil() -> None:
    import threading
    import time

    line = "Counting a long prompt while another thread keeps running. 12345\n"
    ticks = 0
    done = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    def calls(text: str) -> list[Callable[[], int]]:
        body = orjson.dumps({"messages": [{"role": "user", "content": text}]})
        return [
            lambda: native.count_text_tokens("gpt-4o", text),
            lambda: native.count_messages_tokens("gpt-4", [{"role": "user", "content": text}]),
            lambda: native.count_chat_tokens("gpt-4o", body),
        ]

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        for which in range(3):
            lines = 50_000
            while True:
                call = calls(line * lines)[which]
                before, start = ticks, time.perf_counter()
                assert call() >= 12 * lines
                during, elapsed = ticks - before, time.perf_counter() - start
                # Long enough that one 5 ms switch interval is a small part of it.
                if elapsed >= 0.1 or lines >= 1_600_000:
                    break
                lines *= 4
            before = ticks
            time.sleep(elapsed)
            idle = ticks - before
            # Holding the GIL would let the spinning thread run for at most one switch
            # interval of the call; released, it runs for most of it.
            assert during > idle / 5
    finally:
        done.set()
        worker.join()
