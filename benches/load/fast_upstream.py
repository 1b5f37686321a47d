"""A minimal, fast OpenAI-shaped upstream for overhead benchmarks (asyncio protocol).

Answers every POST with a canned chat completion, or, when the body has
``"stream": true``, with a canned SSE stream (chunked) that ends in a usage chunk and
``[DONE]``.  Keep-alive, HTTP/1.1, no parsing beyond the headers, so the upstream's own
cost stays small and equal for every configuration measured against it.

    python benches/load/fast_upstream.py --port 18000
"""

from __future__ import annotations

import argparse
import asyncio

import orjson

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": None,
    }
    return b"data: " + orjson.dumps(data) + b"\n\n"


_WORDS = ["Hello!", " How", " can", " I", " help", " you", " today", "?"]
_USAGE = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)
EVENTS = [
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": w}) for w in _WORDS),
    _chunk({}, "stop"),
    b"data: " + _USAGE + b"\n\n",
    b"data: [DONE]\n\n",
]


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


PLAIN = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(COMPLETION),
    COMPLETION,
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
STREAM_PARTS = [STREAM_HEAD + _http_chunk(EVENTS[0]), *(_http_chunk(e) for e in EVENTS[1:])]
STREAM_PARTS.append(b"0\r\n\r\n")


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower() + b"\r\n"
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 : head.find(b"\r\n", at)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            assert self.transport is not None
            if b'"stream":true' in body or b'"stream": true' in body:
                self.transport.write(b"".join(STREAM_PARTS))
            else:
                self.transport.write(PLAIN)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
