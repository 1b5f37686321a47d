"""Small real upstreams on 127.0.0.1 that speak Anthropic, Gemini and Azure formats.

Each runs an aiohttp app in its own thread and event loop (so sync SDK tests and a
``tollhouse serve`` subprocess can use it too), checks the provider's auth header,
records every request, and answers deterministically from the request:

- with tools and no tool result yet: a call of the first tool with ``{"city": "Paris"}``;
- otherwise ``"echo: <last user text>"``, streamed one word per event.

``fail_status`` makes it answer that status; ``cut_after`` cuts a stream after that many
events (the connection closes mid-stream); ``event_delay`` paces stream events, and
``cancelled`` is set when the gateway hangs up on a stream before its end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from tests.support.servers import free_port

KEY = "sk-upstream-test-key"


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Upstream:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    fail_status: int = 0
    cut_after: int = 0
    cache_read: int = 0
    event_delay: float = 0.0  # seconds between stream events
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def last(self) -> Seen:
        return self.seen[-1]


@contextmanager
def serve(app: web.Application, state: Upstream, prefix: str = "") -> Iterator[Upstream]:
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "upstream did not start"
    state.url = f"http://127.0.0.1:{port}{prefix}"
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _record(state: Upstream, request: web.Request) -> dict[str, Any]:
    body = orjson.loads(await request.read())
    state.seen.append(
        Seen(
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
    )
    return body  # type: ignore[no-any-return]


async def _sse(request: web.Request, state: Upstream, events: list[bytes]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for i, frame in enumerate(events):
        if state.cut_after and i >= state.cut_after:
            assert request.transport is not None
            request.transport.close()
            return resp
        try:
            await resp.write(frame)
            await asyncio.sleep(state.event_delay if i else 0)
        except (ConnectionResetError, asyncio.CancelledError):
            state.cancelled.set()  # the gateway closed the connection mid-stream
            raise
    await resp.write_eof()
    return resp


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


# -- Anthropic ---------------------------------------------------------------------------


def _anthropic_last_text(body: dict[str, Any]) -> tuple[str, bool]:
    """(last user text, whether the last user turn carries tool results)."""
    last = body["messages"][-1]
    content = last["content"]
    if isinstance(content, str):
        return content, False
    texts = [b.get("text", "") for b in content if b.get("type") == "text"]
    results = [b for b in content if b.get("type") == "tool_result"]
    if results and not texts:
        texts = [str(r.get("content")) for r in results]
    return " ".join(texts), bool(results)


def anthropic_app(state: Upstream) -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await _record(state, request)
        if request.headers.get("x-api-key") != KEY:
            err = {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
            return web.json_response(err, status=401)
        if not request.headers.get("anthropic-version"):
            err = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "version"},
            }
            return web.json_response(err, status=400)
        if state.fail_status:
            err = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
            return web.json_response(err, status=state.fail_status)
        text, has_results = _anthropic_last_text(body)
        call = bool(body.get("tools")) and not has_results
        usage = {
            "input_tokens": len(orjson.dumps(body["messages"])) // 4,
            "cache_read_input_tokens": state.cache_read,
            "cache_creation_input_tokens": 0,
        }
        reply = f"echo: {text}"
        tool = body["tools"][0]["name"] if call else ""
        if not body.get("stream"):
            content: list[dict[str, Any]] = (
                [{"type": "tool_use", "id": "toolu_01", "name": tool, "input": {"city": "Paris"}}]
                if call
                else [{"type": "text", "text": reply}]
            )
            return web.json_response(
                {
                    "id": "msg_01test",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": content,
                    "stop_reason": "tool_use" if call else "end_turn",
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": len(reply.split())},
                }
            )

        def ev(kind: str, **data: Any) -> bytes:
            return (
                b"event: "
                + kind.encode()
                + b"\ndata: "
                + orjson.dumps({"type": kind, **data})
                + b"\n\n"
            )

        start = {
            "id": "msg_01stream",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events = [ev("message_start", message=start), ev("ping")]
        if call:
            block = {"type": "tool_use", "id": "toolu_01", "name": tool, "input": {}}
            events.append(ev("content_block_start", index=0, content_block=block))
            for piece in ('{"city": ', '"Paris"}'):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append(ev("content_block_delta", index=0, delta=delta))
        else:
            events.append(
                ev("content_block_start", index=0, content_block={"type": "text", "text": ""})
            )
            for word in _words(reply):
                events.append(
                    ev("content_block_delta", index=0, delta={"type": "text_delta", "text": word})
                )
        events.append(ev("content_block_stop", index=0))
        stop = "tool_use" if call else "end_turn"
        events.append(
            ev(
                "message_delta",
                delta={"stop_reason": stop, "stop_sequence": None},
                usage={"output_tokens": len(reply.split())},
            )
        )
        events.append(ev("message_stop"))
        return await _sse(request, state, events)

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app


# -- Gemini ------------------------------------------------------------------------------


def gemini_app(state: Upstream) -> web.Application:
    async def models(request: web.Request) -> web.StreamResponse:
        body = await _record(state, request)
        model, _, method = request.match_info["tail"].partition(":")
        if request.headers.get("x-goog-api-key") != KEY:
            err = {
                "error": {
                    "code": 403,
                    "message": "API key not valid",
                    "status": "PERMISSION_DENIED",
                }
            }
            return web.json_response(err, status=403)
        if state.fail_status:
            err = {"error": {"code": state.fail_status, "message": "busy", "status": "UNAVAILABLE"}}
            return web.json_response(err, status=state.fail_status)
        if method == "batchEmbedContents":
            vectors = [
                {"values": [float(len(r["content"]["parts"][0]["text"])), 0.5]}
                for r in body["requests"]
            ]
            return web.json_response({"embeddings": vectors})
        last = body["contents"][-1]
        results = [p for p in last["parts"] if "functionResponse" in p]
        text = " ".join(p.get("text", "") for p in last["parts"] if "text" in p) or " ".join(
            str(p["functionResponse"]["response"].get("content")) for p in results
        )
        call = bool(body.get("tools")) and not results
        prompt = len(orjson.dumps(body["contents"])) // 4
        reply = f"echo: {text}"
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": len(reply.split()),
            "totalTokenCount": prompt + len(reply.split()),
            "cachedContentTokenCount": state.cache_read,
        }
        if call:
            name = body["tools"][0]["functionDeclarations"][0]["name"]
            parts: list[dict[str, Any]] = [
                {
                    "functionCall": {"name": name, "args": {"city": "Paris"}},
                    "thoughtSignature": "c2ln",
                }
            ]
        else:
            parts = [{"text": reply}]
        if method == "generateContent":
            cand = {
                "content": {"role": "model", "parts": parts},
                "finishReason": "STOP",
                "index": 0,
            }
            return web.json_response(
                {
                    "candidates": [cand],
                    "usageMetadata": usage,
                    "modelVersion": model,
                    "responseId": "resp-g1",
                }
            )
        assert method == "streamGenerateContent" and request.query.get("alt") == "sse"
        pieces = [[p] for p in parts] if call else [[{"text": w}] for w in _words(reply)]
        frames = []
        for i, piece in enumerate(pieces):
            cand = {"content": {"role": "model", "parts": piece}, "index": 0}
            chunk: dict[str, Any] = {
                "candidates": [cand],
                "responseId": "resp-g2",
                "modelVersion": model,
            }
            if i == len(pieces) - 1:
                cand["finishReason"] = "STOP"
                chunk["usageMetadata"] = usage
            frames.append(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
        return await _sse(request, state, frames)

    app = web.Application()
    app.router.add_post("/v1beta/models/{tail}", models)
    return app


# -- Azure OpenAI ------------------------------------------------------------------------


def azure_app(state: Upstream) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await _record(state, request)
        if request.headers.get("api-key") != KEY:
            return web.json_response(
                {"error": {"code": "401", "message": "Access denied"}}, status=401
            )
        if "/deployments/" in request.path and "api-version" not in request.query:
            return web.json_response(
                {"error": {"code": "404", "message": "Resource not found"}}, status=404
            )
        if state.fail_status:
            return web.json_response({"error": {"message": "busy"}}, status=state.fail_status)
        model = request.match_info.get("deployment") or body.get("model", "")
        if request.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
            usage = {"prompt_tokens": 2, "total_tokens": 2}
            return web.json_response(
                {"object": "list", "data": data, "model": model, "usage": usage}
            )
        text = body["messages"][-1]["content"]
        reply = f"echo: {text}"
        usage = {
            "prompt_tokens": 5,
            "completion_tokens": len(reply.split()),
            "total_tokens": 5 + len(reply.split()),
        }
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
            return web.json_response(
                {
                    "id": "chatcmpl-az",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )
        frames = []
        for word in _words(reply):
            ch = {"index": 0, "delta": {"content": word}, "finish_reason": None}
            frames.append(
                b"data: "
                + orjson.dumps(
                    {
                        "id": "chatcmpl-az",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": model,
                        "choices": [ch],
                    }
                )
                + b"\n\n"
            )
        frames.append(
            b"data: "
            + orjson.dumps(
                {
                    "id": "chatcmpl-az",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
            + b"\n\n"
        )
        frames.append(b"data: [DONE]\n\n")
        return await _sse(request, state, frames)

    app = web.Application()
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", handle)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", handle)
    app.router.add_post("/openai/v1/chat/completions", handle)
    return app


# -- OpenAI-compatible -----------------------------------------------------------------------


def _openai_last_text(body: dict[str, Any]) -> tuple[str, bool]:
    last = body["messages"][-1]
    if last["role"] == "tool":
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        return " ".join(str(r) for r in results), True
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return str(content or ""), False


def openai_app(state: Upstream) -> web.Application:
    """Chat completions (and a native ``/v1/responses``), Bearer auth."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await _record(state, request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"message": "bad key", "type": "auth"}}, status=401)
        if state.fail_status:
            return web.json_response({"error": {"message": "busy"}}, status=state.fail_status)
        text, has_results = _openai_last_text(body)
        call = bool(body.get("tools")) and not has_results and body.get("tool_choice") != "none"
        reply = f"echo: {text}"
        prompt = len(orjson.dumps(body["messages"])) // 4
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(reply.split()),
            "total_tokens": prompt + len(reply.split()),
            "prompt_tokens_details": {"cached_tokens": state.cache_read},
        }
        name = body["tools"][0]["function"]["name"] if call else ""
        base = {"id": "chatcmpl-up", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if call else reply}
            if call:
                fn = {"name": name, "arguments": '{"city": "Paris"}'}
                message["tool_calls"] = [{"id": "call_up1", "type": "function", "function": fn}]
            choice = {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if call else "stop",
            }
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        def ck(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            data = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            return b"data: " + orjson.dumps(data) + b"\n\n"

        frames = [ck({"role": "assistant", "content": ""})]
        if call:
            head = {
                "index": 0,
                "id": "call_up1",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            frames.append(ck({"tool_calls": [head]}))
            for piece in ('{"city": ', '"Paris"}'):
                frames.append(ck({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            frames += [ck({"content": w}) for w in _words(reply)]
        frames.append(ck({}, "tool_calls" if call else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            data = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            frames.append(b"data: " + orjson.dumps(data) + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        return await _sse(request, state, frames)

    async def responses(request: web.Request) -> web.StreamResponse:
        body = await _record(state, request)
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"message": "bad key", "type": "auth"}}, status=401)
        text = body["input"] if isinstance(body["input"], str) else "items"
        reply = f"native: {text}"
        item = {
            "type": "message",
            "id": "msg_n1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply, "annotations": []}],
        }
        usage = {
            "input_tokens": 9,
            "output_tokens": 2,
            "total_tokens": 11,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        resp = {
            "id": "resp_native",
            "object": "response",
            "created_at": 1,
            "status": "completed",
            "model": body["model"],
            "output": [item],
            "usage": usage,
        }
        if not body.get("stream"):
            return web.json_response(resp)

        def ev(kind: str, **data: Any) -> bytes:
            return (
                b"event: "
                + kind.encode()
                + b"\ndata: "
                + orjson.dumps({"type": kind, **data})
                + b"\n\n"
            )

        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_n1", "output_index": 0, "content_index": 0}
        added = {**item, "status": "in_progress", "content": []}
        steps: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": {**resp, "status": "in_progress", "output": []}}),
            ("response.output_item.added", {"output_index": 0, "item": added}),
            ("response.content_part.added", {**where, "part": part}),
            ("response.output_text.delta", {**where, "delta": reply}),
            ("response.output_text.done", {**where, "text": reply}),
            ("response.content_part.done", {**where, "part": {**part, "text": reply}}),
            ("response.output_item.done", {"output_index": 0, "item": item}),
            ("response.completed", {"response": resp}),
        ]
        frames = [ev(kind, sequence_number=i, **data) for i, (kind, data) in enumerate(steps)]
        return await _sse(request, state, frames)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", responses)
    return app


def _upstream(app: Callable[[Upstream], web.Application], prefix: str = "") -> Callable[[], Any]:
    @contextmanager
    def run() -> Iterator[Upstream]:
        state = Upstream()
        with serve(app(state), state, prefix) as s:
            yield s

    return run


openai_upstream = _upstream(openai_app, "/v1")
anthropic_upstream = _upstream(anthropic_app)
gemini_upstream = _upstream(gemini_app, "/v1beta")
azure_upstream = _upstream(azure_app)
