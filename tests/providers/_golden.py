"""Golden translation files: ``golden/<name>.json`` holds a direction, its input and the
expected output.  ``TOLLHOUSE_REGEN_GOLDEN=1 pytest tests/providers`` rewrites the
expected side; review the diff before committing it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tollhouse.providers._anthropic_format import (
    anthropic_to_chat,
    chat_to_anthropic,
    chat_to_messages_response,
    messages_to_chat,
)
from tollhouse.providers._anthropic_stream import AnthropicToChat, ChatToAnthropic
from tollhouse.providers._gemini_format import chat_to_gemini, gemini_to_chat
from tollhouse.providers._gemini_stream import GeminiToChat
from tollhouse.providers._responses_format import chat_to_response, responses_to_chat
from tollhouse.providers._responses_stream import ChatToResponses

GOLDEN = Path(__file__).parent / "golden"


def _anthropic_stream(events: list[Any], **opts: Any) -> list[Any]:
    t = AnthropicToChat(created=0, **opts)
    return [c for event, data in events for c in t.feed(event, data)]


def _messages_stream(chunks: list[Any], **opts: Any) -> list[Any]:
    t = ChatToAnthropic(**opts)
    out = [list(e) for c in chunks for e in t.feed(c)]
    return out + [list(e) for e in t.finish()]


def _gemini_stream(chunks: list[Any], **opts: Any) -> list[Any]:
    t = GeminiToChat(created=0, **opts)
    return [c for data in chunks for c in t.feed(data)] + t.finish()


def _responses_stream(chunks: list[Any], **opts: Any) -> list[Any]:
    t = ChatToResponses(created=0, **opts)
    out = [list(e) for c in chunks for e in t.feed(c)]
    return out + [list(e) for e in t.finish()]


DIRECTIONS: dict[str, Callable[..., Any]] = {
    "anthropic.request": chat_to_anthropic,
    "anthropic.response": lambda body, **o: anthropic_to_chat(body, created=0, **o),
    "anthropic.stream": _anthropic_stream,
    "messages.request": messages_to_chat,
    "messages.response": chat_to_messages_response,
    "messages.stream": _messages_stream,
    "gemini.request": chat_to_gemini,
    "gemini.response": lambda body, **o: gemini_to_chat(body, created=0, **o),
    "gemini.stream": _gemini_stream,
    "responses.request": responses_to_chat,
    "responses.response": lambda body, **o: chat_to_response(body, created=0, **o),
    "responses.stream": _responses_stream,
}


def cases(prefix: str) -> list[Path]:
    return sorted(GOLDEN.glob(f"{prefix}*.json"))


def check(path: Path) -> None:
    case = json.loads(path.read_text())
    fn = DIRECTIONS[case["direction"]]
    got = json.loads(json.dumps(fn(case["input"], **case.get("options", {}))))
    if os.environ.get("TOLLHOUSE_REGEN_GOLDEN") == "1":
        case["expected"] = got
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
        return
    assert got == case["expected"], f"{path.name}: translation differs from the golden file"
