"""The incremental SSE parser: any split of the bytes gives the same events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tollhouse.providers._sse import SSEEvent, SSEParser, encode_event

STREAM = (
    b": keep-alive\n\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: line1\r\ndata: line2\r\n\r\n"
    b"event: ping\rdata: {}\r\r"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"a": 1}'),
    SSEEvent("message", "line1\nline2"),
    SSEEvent("ping", "{}"),
    SSEEvent("message", "[DONE]"),
]


def _parse(pieces: list[bytes]) -> list[SSEEvent]:
    p = SSEParser()
    out = [e for piece in pieces for e in p.feed(piece)]
    return out + p.close()


def test_whole_stream() -> None:
    assert _parse([STREAM]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert _parse(pieces) == EXPECTED


def test_unterminated_last_event_is_delivered_on_close() -> None:
    assert _parse([b'data: {"x": 1}']) == [SSEEvent("message", '{"x": 1}')]


def test_encode_round_trips() -> None:
    frame = encode_event({"type": "ping"}, "ping") + encode_event({"k": "é"})
    assert _parse([frame]) == [
        SSEEvent("ping", '{"type":"ping"}'),
        SSEEvent("message", '{"k":"é"}'),
    ]
