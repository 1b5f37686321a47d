"""CPU cost of the translators alone (no network): per request and per stream chunk.

    python benches/translate/micro.py

Runs each translation many times in one process and prints microseconds per call
(``time.process_time``, so waiting on other processes does not count, but a loaded
machine still slows the CPU we get).  The end-to-end comparison is ``gateway.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from tollhouse.providers._anthropic_format import (
    anthropic_to_chat,
    chat_to_anthropic,
    chat_to_messages_response,
    messages_to_chat,
)
from tollhouse.providers._anthropic_stream import AnthropicToChat, ChatToAnthropic
from tollhouse.providers._gemini_format import chat_to_gemini, gemini_to_chat

CHAT = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. " * 10},
        {"role": "user", "content": "Summarise the following text. " + "lorem ipsum " * 200},
        {"role": "assistant", "content": "Sure: " + "dolor sit amet " * 50},
        {"role": "user", "content": "Thanks, now shorter."},
    ],
    "max_tokens": 256,
    "temperature": 0.2,
    "stream": False,
}
ANTHROPIC_REPLY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": [{"type": "text", "text": "word " * 120}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 700, "output_tokens": 120, "cache_read_input_tokens": 0},
}
GEMINI_REPLY = {
    "candidates": [{"content": {"parts": [{"text": "word " * 120}]}, "finishReason": "STOP"}],
    "usageMetadata": {"promptTokenCount": 700, "candidatesTokenCount": 120},
    "responseId": "r",
}
CHAT_REPLY = {
    "id": "c",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "word " * 120},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 700, "completion_tokens": 120, "total_tokens": 820},
}
DELTA = orjson.dumps(
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}
)
CHUNK = orjson.dumps(
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}],
    }
)


def per_call_us(fn: Callable[[], Any], n: int = 3000) -> float:
    fn()
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n * 1e6


def main() -> None:
    raw = orjson.dumps(CHAT)
    anth_raw = orjson.dumps(ANTHROPIC_REPLY)
    a_stream = AnthropicToChat(created=0)
    a_stream.feed("message_start", {"type": "message_start", "message": {"id": "m", "usage": {}}})
    c_stream = ChatToAnthropic(id_="m", model="m")
    rows = [
        (
            "pass-through baseline: orjson loads+dumps of the request",
            lambda: orjson.dumps(orjson.loads(raw)),
        ),
        (
            "chat -> anthropic request (+ dumps)",
            lambda: orjson.dumps(chat_to_anthropic(orjson.loads(raw), model="c")),
        ),
        (
            "anthropic reply -> chat (loads + dumps)",
            lambda: orjson.dumps(anthropic_to_chat(orjson.loads(anth_raw), created=0)),
        ),
        (
            "chat -> gemini request (+ dumps)",
            lambda: orjson.dumps(chat_to_gemini(orjson.loads(raw))),
        ),
        (
            "gemini reply -> chat (+ dumps)",
            lambda: orjson.dumps(gemini_to_chat(GEMINI_REPLY, model="g", created=0)),
        ),
        (
            "inbound messages -> chat request",
            lambda: messages_to_chat(chat_to_anthropic(CHAT, model="c")),
        ),
        ("chat reply -> messages reply", lambda: chat_to_messages_response(CHAT_REPLY, model="m")),
        (
            "stream: one anthropic delta -> chat chunk frame",
            lambda: [
                orjson.dumps(c) for c in a_stream.feed("content_block_delta", orjson.loads(DELTA))
            ],
        ),
        (
            "stream: one chat chunk -> anthropic event frame",
            lambda: [orjson.dumps(d) for _, d in c_stream.feed(orjson.loads(CHUNK))],
        ),
    ]
    print(f"{'translation':58s} {'us/call':>8s}")
    for name, fn in rows:
        print(f"{name:58s} {per_call_us(fn):8.1f}")


if __name__ == "__main__":
    main()
