"""``POST /v1/messages``: the Anthropic Messages API in front of any provider.

The official ``anthropic`` SDK works against Tollhouse with ``base_url=http://HOST:PORT``
and the virtual key as its API key (sent in ``x-api-key``; ``Authorization: Bearer``
works too).  The request becomes a chat request, goes through the normal pipeline to
whichever provider serves the model, and the answer (or stream) comes back as Anthropic
Messages events.  An ``anthropic`` provider gets the client's request as is, so
``cache_control``, ``thinking`` and other Anthropic-only fields keep working, and its
answer is relayed unchanged (a non-stream body names the public model).  Errors keep
the gateway envelope, with Anthropic's ``"type": "error"`` at the top so Anthropic
clients recognise them.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollhouse import native
from tollhouse.errors import TollhouseError
from tollhouse.gateway import Gateway
from tollhouse.providers._anthropic_format import (
    STOP_TO_CHAT,
    anthropic_usage,
    chat_to_messages_response,
    messages_to_chat,
)
from tollhouse.providers._anthropic_stream import ChatToAnthropic
from tollhouse.providers._chat_shape import usage_parts
from tollhouse.providers.anthropic import AnthropicProvider
from tollhouse.proxy import asgi, pipeline
from tollhouse.proxy._body import ClientGone, read_body
from tollhouse.proxy._dialect import (
    Dialect,
    StreamTranslator,
    authenticate,
    native_body,
    relay_native,
    serve,
    timed,
)
from tollhouse.proxy.pipeline import Exchange, Usage


def _model(ex: Exchange, client: dict[str, Any]) -> str:
    return ex.route.model if ex.route is not None else str(client.get("model", ""))


def _reply(data: dict[str, Any], ex: Exchange, client: dict[str, Any]) -> dict[str, Any]:
    out = chat_to_messages_response(data, model=str(client.get("model") or _model(ex, client)))
    out["id"] = f"msg_{ex.request_id}"
    return out


def _stream(ex: Exchange, client: dict[str, Any]) -> StreamTranslator:
    model = str(client.get("model") or _model(ex, client))
    return ChatToAnthropic(id_=f"msg_{ex.request_id}", model=model)


def _set_usage(conv: StreamTranslator, usage: dict[str, Any]) -> None:
    assert isinstance(conv, ChatToAnthropic)  # noqa: S101 - built by _stream
    conv.usage = usage


def error_body(exc: TollhouseError) -> bytes:
    body: dict[str, Any] = {"type": "error", **exc.body()}
    return orjson.dumps(body)


def _stream_error(conv: StreamTranslator, exc: TollhouseError) -> bytes:
    return b"event: error\ndata: " + error_body(exc) + b"\n\n"


def anthropic_usage_of(usage: Any) -> Usage | None:
    """Anthropic usage -> the pipeline's (prompt tokens include cache reads and writes)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion, cached, write, _ = usage_parts(anthropic_usage(usage))
    return Usage(prompt, completion, cached, write)


class _StreamUsage:
    """Usage of a native Anthropic stream: input in message_start, output in message_delta."""

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}

    def __call__(self, data: dict[str, Any]) -> Usage | None:
        kind = data.get("type")
        if kind == "message_start":
            self.usage.update((data.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        else:
            return None
        return anthropic_usage_of(self.usage)


async def _native(gw: Gateway, ex: Exchange, client: dict[str, Any], send: asgi.Send) -> bool:
    """An Anthropic provider gets the client's request as is (cache_control, thinking...)."""
    assert ex.route is not None  # noqa: S101 - resolved before
    provider = ex.route.provider
    if not isinstance(provider, AnthropicProvider):
        return False
    body = native_body(ex, client)
    if body.get("stream") is True:
        ex.stream = True
        chunks = await timed(ex, provider.messages_stream(body))
        await relay_native(gw, ex, chunks, send, _StreamUsage(), '"usage"')
        return True
    data = await timed(ex, provider.messages(body))
    usage = anthropic_usage_of(data.get("usage")) or pipeline.estimate_usage(ex, "")
    pipeline.settle(gw, ex, usage)
    ex.finish_reason = STOP_TO_CHAT.get(str(data.get("stop_reason")), None)
    data["model"] = client.get("model", data.get("model"))
    body_out = orjson.dumps(data)
    await asgi.send_bytes(send, 200, body_out, [asgi.JSON, *pipeline.gate_headers(ex, cost=True)])
    return True


MESSAGES = Dialect(
    name="messages",
    to_chat=messages_to_chat,
    reply=_reply,
    stream=_stream,
    set_usage=_set_usage,
    error_body=error_body,
    stream_error=_stream_error,
    native=_native,
)


async def messages(gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    await serve(gw, scope, receive, send, MESSAGES)


async def count_tokens(
    gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send
) -> None:
    """``POST /v1/messages/count_tokens``: prompt tokens of a Messages request, counted
    locally by the Rust core for the model's upstream (an estimate for Claude models); no
    upstream call and no spend row."""
    headers: list[asgi.Header] = scope["headers"]
    try:
        key = authenticate(gw, headers)
        client = pipeline.parse_model_body(await read_body(receive, headers, gw.max_body_bytes))
        route = pipeline.resolve(gw, key, client["model"])
        chat = messages_to_chat({**client, "stream": False}, drop_unsupported=True)
        tools = chat.get("tools")
        count = native.count_messages_tokens(route.upstream_model, chat["messages"], tools)
        await asgi.send_json(send, 200, {"input_tokens": count})
    except TollhouseError as exc:
        status, body, out = asgi.error_response(exc)
        await asgi.send_bytes(send, status, error_body(exc), out)
    except ClientGone:
        return
