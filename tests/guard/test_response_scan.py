"""Response scanning: non-stream choices, and SSE streams with secrets split anywhere."""

from __future__ import annotations

from typing import Any

import orjson

from tollhouse import native
from tollhouse.guard.response_scan import StreamScanner, scan_completion

RED = native.Redactor()
SECRET = "sk-proj-" + "Mn1Bv2Cx3Zl4Kj5Hg6Fd" * 2
TEXT = f"Use the key {SECRET} and mail ops@example.com please."


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def content_chunk(text: str, index: int = 0, finish: str | None = None) -> bytes:
    choice = {"index": index, "delta": {"content": text}, "finish_reason": finish}
    return event({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})


def collect(stream: bytes) -> dict[int, str]:
    out: dict[int, str] = {}
    for ev in stream.split(b"\n\n"):
        if not ev.startswith(b"data: {"):
            continue
        for choice in orjson.loads(ev[6:])["choices"]:
            text = choice["delta"].get("content") or ""
            out[choice["index"]] = out.get(choice["index"], "") + text
    return out


def test_completion_choices_and_tool_arguments() -> None:
    data = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": TEXT}},
            {
                "index": 1,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"function": {"name": "f", "arguments": f'{{"k":"{SECRET}"}}'}}],
                },
            },
        ]
    }
    assert scan_completion(data, RED, {}) == 3
    assert SECRET not in orjson.dumps(data).decode() and "ops@example.com" not in str(data)


def test_stream_split_at_every_position() -> None:
    expected = RED.redact(TEXT).text
    for cut in range(1, len(TEXT)):
        scanner = StreamScanner(RED, {})
        out = scanner.feed(content_chunk(TEXT[:cut]))
        out += scanner.feed(content_chunk(TEXT[cut:]))
        out += scanner.feed(content_chunk("", finish="stop") + b"data: [DONE]\n\n")
        out += scanner.finish()
        assert SECRET not in out.decode()
        assert collect(out) == {0: expected}, cut
        assert out.endswith(b"data: [DONE]\n\n") and scanner.count == 2


def test_stream_without_finish_flushes_before_done_and_at_end() -> None:
    scanner = StreamScanner(RED, {})
    out = scanner.feed(content_chunk("key " + SECRET[:12], index=0))
    out += scanner.feed(content_chunk("other " + SECRET[:5], index=1))
    out += scanner.feed(content_chunk(SECRET[12:], index=0))
    out += scanner.feed(content_chunk(SECRET[5:] + " end", index=1))
    out += scanner.feed(b"data: [DONE]\n\n")
    texts = collect(out)
    assert texts == {0: "key [REDACTED:OPENAI_KEY]", 1: "other [REDACTED:OPENAI_KEY] end"}
    assert out.endswith(b"data: [DONE]\n\n")
    tail = StreamScanner(RED, {})
    cut = tail.feed(content_chunk("a " + SECRET[:20]))
    assert SECRET[:20] not in cut.decode()
    assert collect(tail.finish())[0].startswith(SECRET[:20])  # a cut stream: held text released


def test_other_events_pass_untouched() -> None:
    scanner = StreamScanner(RED, {})
    usage = event({"choices": [], "usage": {"prompt_tokens": 1}})
    assert scanner.feed(usage) == usage
    assert scanner.feed(b": keep-alive\n\n") == b": keep-alive\n\n"
    assert scanner.feed(b"") == b""
