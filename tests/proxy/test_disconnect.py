"""A client that goes away cancels the upstream call; the spend row says what was used."""

from __future__ import annotations

import socket
import sqlite3
import time
from typing import Any

import orjson
from tests.support.gateway import Stack
from tests.support.upstream import Upstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _raw_request(stack: Stack, body: dict[str, Any]) -> socket.socket:
    data = orjson.dumps(body)
    sock = socket.create_connection(("127.0.0.1", stack.gateway.port))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {stack.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data)
    return sock


def _cancelled_rows(stack: Stack, more_than: int = -1) -> list[tuple[Any, ...]]:
    path = stack.store_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + 5
    while True:
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT id, status, cancelled, streamed, prompt_tokens, completion_tokens, "
                "cost_micros FROM spend WHERE cancelled = 1 ORDER BY created_at"
            ).fetchall()
        if len(rows) > more_than or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_non_stream_disconnect_cancels_upstream(stack: Stack, upstream: Upstream) -> None:
    before = len(_cancelled_rows(stack))
    upstream.options(latency_ms=3000)
    sock = _raw_request(stack, CHAT)
    time.sleep(0.3)
    sock.close()
    started = time.monotonic()
    assert upstream.wait_cancelled(3), "the upstream never saw the cancel"
    assert time.monotonic() - started < 2
    rows = _cancelled_rows(stack, before)
    assert len(rows) > before
    _id, status, cancelled, streamed, prompt, completion, cost = rows[-1]
    assert (status, cancelled, streamed) == (499, 1, 0)
    assert prompt > 0 and completion == 0  # the prompt was sent; nothing came back
    assert cost > 0


def test_stream_disconnect_cancels_upstream(stack: Stack, upstream: Upstream) -> None:
    upstream.options(chunk_delay_ms=100)
    body = {**CHAT, "stream": True, "mock": {"reply": " ".join(["word"] * 200)}}
    n = len(upstream.requests)
    before = len(_cancelled_rows(stack))
    sock = _raw_request(stack, body)
    sock.settimeout(5)
    received = b""
    while received.count(b"data: ") < 4:
        received += sock.recv(65536)
    sock.close()
    upstream.wait_requests(n + 1)
    assert upstream.wait_cancelled(3), "the upstream never saw the cancel"
    rows = [r for r in _cancelled_rows(stack, before) if r[3] == 1]
    assert rows, "no spend row for the cancelled stream"
    _id, status, cancelled, streamed, prompt, completion, cost = rows[-1]
    assert (status, cancelled) == (499, 1)
    assert prompt > 0
    assert 0 < completion < 200  # what was relayed before the client left
    assert cost > 0
