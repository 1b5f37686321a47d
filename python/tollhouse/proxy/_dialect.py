"""Serving a non-chat client format (Anthropic Messages, OpenAI Responses) over chat.

A ``Dialect`` says how to turn the client's body into a chat request, a chat completion
into the client's answer, and chat chunks into the client's stream events.  ``serve``
runs the usual pipeline stages around it (auth, body cap, resolve, upstream call, usage,
cost, headers, spend row, disconnect cancel), so any provider can answer any dialect.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson

from tollhouse.errors import TollhouseError, UpstreamHTTPError
from tollhouse.gateway import Gateway
from tollhouse.providers import Reply
from tollhouse.providers._chat_shape import GATEWAY_FIELDS, chat_usage
from tollhouse.providers._sse import SSEParser, encode_event
from tollhouse.proxy import asgi, budget, pipeline
from tollhouse.proxy._body import ClientGone
from tollhouse.proxy.pipeline import Exchange, Route, Usage
from tollhouse.proxy.routes import (
    DisconnectWatch,
    admitted,
    ended,
    finish,
    reply_data,
    settle_completion,
    start_sse,
)
from tollhouse.routing import attempts
from tollhouse.routing.registry import Target
from tollhouse.store.base import KeyRecord

Event = tuple[str, dict[str, Any]]
T = TypeVar("T")


class StreamTranslator(Protocol):
    def feed(self, data: dict[str, Any]) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    to_chat: Callable[[dict[str, Any]], dict[str, Any]]
    reply: Callable[[dict[str, Any], Exchange, dict[str, Any]], dict[str, Any]]
    stream: Callable[[Exchange, dict[str, Any]], StreamTranslator]
    # set the final usage on the translator (it reaches the closing event)
    set_usage: Callable[[StreamTranslator, dict[str, Any]], None]
    error_body: Callable[[TollhouseError], bytes]
    stream_error: Callable[[StreamTranslator, TollhouseError], bytes]
    # a provider that speaks this dialect natively gets the client's body (``native_body``)
    # instead of a chat request; False: this provider does not, translate
    native: Callable[[Gateway, Exchange, dict[str, Any], asgi.Send], Awaitable[bool]] | None = None


def authenticate(gw: Gateway, headers: list[asgi.Header]) -> KeyRecord:
    """The virtual key from ``x-api-key`` (Anthropic SDKs) or ``Authorization: Bearer``."""
    key = asgi.header(headers, b"x-api-key")
    if key is not None:
        return gw.keys.authenticate(key.decode("latin-1").strip() or None)
    return pipeline.authenticate(gw, headers)


async def serve(
    gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send, dialect: Dialect
) -> None:
    ex = Exchange()
    headers: list[asgi.Header] = scope["headers"]
    watch: DisconnectWatch | None = None
    try:
        key = authenticate(gw, headers)
        client, _ = await admitted(gw, ex, key, headers, receive, pipeline.parse_model_body)
        watch = DisconnectWatch(receive)
        if dialect.native is not None and await dialect.native(gw, ex, client, send):
            return
        chat = ex.body = dialect.to_chat(client)
        # routing: the deployments, models fallbacks and provider preferences to try
        wanted = {**chat, "models": client.get("models"), "provider": client.get("provider")}
        targets = budget.allowed_targets(ex, attempts.plan(gw, ex, wanted))
        if chat.get("stream") is True:
            ex.stream = True
            await _stream(gw, ex, targets, chat, client, send, dialect)
        else:
            await _complete(gw, ex, targets, chat, client, send, dialect)
    except BaseException as exc:  # noqa: BLE001 - ended() re-raises what must propagate

        async def answer(send: asgi.Send, ex: Exchange, exc: TollhouseError) -> None:
            await fail(send, ex, exc, dialect)

        await ended(send, ex, exc, watch, answer, gone=(ClientGone,))
    finally:
        await finish(gw, ex, watch)


async def fail(send: asgi.Send, ex: Exchange, exc: TollhouseError, dialect: Dialect) -> None:
    """The error in the dialect's envelope; an upstream 4xx keeps its own status and body."""
    ex.status, ex.error_code = exc.status, exc.code
    if ex.responded:  # a native relay failed mid-stream: tell the client in-band
        frame = b"event: error\ndata: " + dialect.error_body(exc) + b"\n\n"
        await send({"type": "http.response.body", "body": frame, "more_body": False})
        return
    status, body, headers = asgi.error_response(exc)
    if not isinstance(exc, UpstreamHTTPError):
        body = dialect.error_body(exc)
    ex.status = status
    await asgi.send_bytes(send, status, body, [*headers, *pipeline.gate_headers(ex, cost=False)])


async def _complete(
    gw: Gateway,
    ex: Exchange,
    targets: list[Target],
    chat: dict[str, Any],
    client: dict[str, Any],
    send: asgi.Send,
    dialect: Dialect,
) -> None:
    async def one(route: Route, target: Target) -> Reply:
        return await route.provider.chat(attempts.make_call(chat, None, target))

    reply = await attempts.run(gw, ex, targets, one)
    data = reply_data(ex, reply)
    usage = settle_completion(gw, ex, data)
    if usage.estimated:
        data["usage"] = _as_chat_usage(usage)
    body = orjson.dumps(dialect.reply(data, ex, client))
    await asgi.send_bytes(send, 200, body, [asgi.JSON, *pipeline.gate_headers(ex, cost=True)])


def _as_chat_usage(usage: Usage) -> dict[str, Any]:
    return chat_usage(
        usage.prompt_tokens,
        usage.completion_tokens,
        cached=usage.cached_tokens,
        cache_write=usage.cache_write_tokens,
    )


async def _stream(
    gw: Gateway,
    ex: Exchange,
    targets: list[Target],
    chat: dict[str, Any],
    client: dict[str, Any],
    send: asgi.Send,
    dialect: Dialect,
) -> None:
    """Chat chunks in, the dialect's events out; errors after the headers go in-band.
    Fails over to the next deployment only before the upstream's first byte."""

    async def open_(route: Route, target: Target) -> AsyncIterator[bytes]:
        call = attempts.make_call(chat, None, target)
        call.set("stream_options", {"include_usage": True})
        return await attempts.open_stream(gw, route, target, call)

    chunks = await attempts.run(gw, ex, targets, open_)
    conv = dialect.stream(ex, client)
    parser = SSEParser()
    text: list[str] = []
    usage: Usage | None = None
    try:
        await start_sse(send, ex)
        try:
            async for piece in chunks:
                if ex.ttft_s is None:
                    ex.ttft_s = time.perf_counter() - ex.started
                out: list[bytes] = []
                for ev in parser.feed(piece):
                    data = _chunk(ev.data)
                    if data is None:
                        continue
                    if data.get("usage"):
                        usage = pipeline.usage_from(data) or usage
                    _collect(data, text, ex)
                    out.extend(encode_event(payload, name) for name, payload in conv.feed(data))
                if out:
                    await send(
                        {"type": "http.response.body", "body": b"".join(out), "more_body": True}
                    )
        except TollhouseError as exc:
            ex.status, ex.error_code = exc.status, exc.code
            usage = usage or pipeline.estimate_usage(ex, "".join(text))
            body = dialect.stream_error(conv, exc)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if usage is None:
            usage = pipeline.estimate_usage(ex, "".join(text))
        dialect.set_usage(conv, _as_chat_usage(usage))
        tail = b"".join(encode_event(payload, name) for name, payload in conv.finish())
        await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        await attempts.aclose(chunks)
        if usage is None:
            usage = pipeline.estimate_usage(ex, "".join(text))
        pipeline.settle(gw, ex, usage)


def _chunk(data: str) -> dict[str, Any] | None:
    if not data or data == "[DONE]":
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _collect(data: dict[str, Any], text: list[str], ex: Exchange) -> None:
    """Keep the generated text (for a token estimate if no usage comes) and the finish."""
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    text.append(fn["arguments"])
        if isinstance(choice.get("finish_reason"), str):
            ex.finish_reason = choice["finish_reason"]


def native_body(ex: Exchange, client: dict[str, Any]) -> dict[str, Any]:
    """The client's body for a provider that speaks its format: the gateway's own fields
    dropped, the deployment's upstream model in."""
    assert ex.route is not None  # noqa: S101 - resolved before
    body = {k: v for k, v in client.items() if k not in GATEWAY_FIELDS}
    body["model"] = ex.route.upstream_model
    return body


async def timed(ex: Exchange, call: Awaitable[T]) -> T:
    """Await an upstream call, counting its time into ``ex.upstream_s``."""
    t = time.perf_counter()
    try:
        return await call
    finally:
        ex.upstream_s += time.perf_counter() - t


async def relay_native(
    gw: Gateway,
    ex: Exchange,
    chunks: AsyncIterator[bytes],
    send: asgi.Send,
    usage_of: Callable[[dict[str, Any]], Usage | None],
    marker: str,
) -> None:
    """Relay a native stream untouched; only events whose data holds ``marker`` are parsed."""
    parser = SSEParser()
    usage: Usage | None = None
    try:
        await start_sse(send, ex)
        async for piece in chunks:
            if ex.ttft_s is None:
                ex.ttft_s = time.perf_counter() - ex.started
            for ev in parser.feed(piece):
                data = _chunk(ev.data) if marker in ev.data else None
                if data is not None:
                    usage = usage_of(data) or usage
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await attempts.aclose(chunks)
        pipeline.settle(gw, ex, usage or pipeline.estimate_usage(ex, ""))
