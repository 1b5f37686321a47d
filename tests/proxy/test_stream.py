"""The SSE relay in process: event alignment, usage capture, hiding and synthesis."""

from __future__ import annotations

import orjson
import pytest

from tollhouse.proxy.pipeline import Usage
from tollhouse.proxy.stream import SSERelay


def chunk(content: str | None = None, finish: str | None = None, usage: object = None) -> bytes:
    data = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        "usage": usage,
    }
    return b"data: " + orjson.dumps(data) + b"\n\n"


USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
USAGE_CHUNK = (
    b"data: "
    + orjson.dumps({"id": "c1", "object": "x", "created": 1, "choices": [], "usage": USAGE})
    + b"\n\n"
)
DONE = b"data: [DONE]\n\n"


def relay(client_usage: bool) -> SSERelay:
    return SSERelay(
        client_usage=client_usage,
        cost_of=lambda u: u.prompt_tokens * 100 + u.completion_tokens * 1000,
        estimate=lambda text: Usage(7, len(text.split()), estimated=True),
    )


def run(r: SSERelay, pieces: list[bytes]) -> bytes:
    out = b"".join(r.feed(p) for p in pieces)
    return out + r.finish()


def events(raw: bytes) -> list[bytes]:
    return [e for e in raw.split(b"\n\n") if e]


def test_events_pass_through_unchanged_and_aligned() -> None:
    stream = chunk("Hello") + chunk(" world") + chunk(None, "stop") + USAGE_CHUNK + DONE
    for size in (1, 3, 7, 64, len(stream)):
        r = relay(client_usage=True)
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        outputs = [r.feed(p) for p in pieces]
        for out in outputs:
            assert out == b"" or out.endswith(b"\n\n")  # never a torn event
        out = b"".join(outputs) + r.finish()
        ev = events(out)
        assert ev[:3] == events(chunk("Hello") + chunk(" world") + chunk(None, "stop"))
        assert ev[-1] == b"data: [DONE]"
        usage = orjson.loads(ev[3][6:])["usage"]
        assert usage["cost"] == pytest.approx((10 * 100 + 3 * 1000) / 1e6)
        assert r.usage == Usage(10, 3)
        assert r.finish_reason == "stop"


def test_usage_chunk_hidden_when_client_did_not_ask() -> None:
    r = relay(client_usage=False)
    out = run(r, [chunk("Hi"), chunk(None, "stop"), USAGE_CHUNK, DONE])
    assert b'"usage":{' not in out
    assert len(events(out)) == 3
    assert r.usage == Usage(10, 3) and r.cost_micros == 4000


def test_usage_on_a_content_chunk_is_nulled_not_dropped() -> None:
    r = relay(client_usage=False)
    out = run(r, [chunk("Hi", "stop", usage=USAGE), DONE])
    ev = events(out)
    assert len(ev) == 2
    data = orjson.loads(ev[0][6:])
    assert data["usage"] is None and data["choices"][0]["delta"]["content"] == "Hi"
    assert r.usage == Usage(10, 3)


def test_missing_usage_is_counted_and_synthesised() -> None:
    r = relay(client_usage=True)
    out = run(r, [chunk("one two"), chunk(" three"), chunk(None, "stop"), DONE])
    ev = events(out)
    assert ev[-1] == b"data: [DONE]"
    synthetic = orjson.loads(ev[-2][6:])
    assert synthetic["choices"] == []
    assert synthetic["usage"]["prompt_tokens"] == 7
    assert synthetic["usage"]["completion_tokens"] == 3
    assert synthetic["usage"]["cost"] == pytest.approx((700 + 3000) / 1e6)
    assert r.usage is not None and r.usage.estimated


def test_missing_usage_not_shown_when_not_asked() -> None:
    r = relay(client_usage=False)
    out = run(r, [chunk("one two"), DONE])
    assert b"usage" not in out.replace(b'"usage":null', b"")
    assert r.usage == Usage(7, 2, estimated=True)


def test_aborted_stream_counts_what_was_relayed() -> None:
    r = relay(client_usage=True)
    r.feed(chunk("a b c"))
    r.feed(b'data: {"choices": [{"delta": {"content": " d')  # torn, never completed
    r.finish()
    assert r.usage is not None and r.usage.completion_tokens == 3


def test_crlf_and_comments_and_tool_calls() -> None:
    tool = {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"function": {"name": "f", "arguments": "x y"}}]}}
        ]
    }
    raw = b": keep-alive\r\n\r\ndata: " + orjson.dumps(tool) + b"\r\n\r\n" + b"data: [DONE]\r\n\r\n"
    r = relay(client_usage=True)
    out = run(r, [raw])
    assert b"\r" not in out
    assert r.usage is not None and r.usage.completion_tokens == 2  # "fx y": name + arguments
