"""``POST /v1/messages``: the Anthropic Messages API in front of any provider.

The official ``anthropic`` SDK works against Tollhouse with ``base_url=http://HOST:PORT``
and the virtual key as its API key (sent in ``x-api-key``; ``Authorization: Bearer``
works too).  The request becomes a chat request, goes through the normal pipeline to
whichever provider serves the model, and the answer (or stream) comes back as Anthropic
Messages events.  Errors keep the gateway envelope, with Anthropic's ``"type": "error"``
at the top so Anthropic clients recognise them.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollhouse.errors import TollhouseError
from tollhouse.gateway import Gateway
from tollhouse.providers._anthropic_format import chat_to_messages_response, messages_to_chat
from tollhouse.providers._anthropic_stream import ChatToAnthropic
from tollhouse.proxy import asgi
from tollhouse.proxy._dialect import Dialect, StreamTranslator, serve
from tollhouse.proxy.pipeline import Exchange


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


MESSAGES = Dialect(
    name="messages",
    to_chat=messages_to_chat,
    reply=_reply,
    stream=_stream,
    set_usage=_set_usage,
    error_body=error_body,
    stream_error=_stream_error,
)


async def messages(gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    await serve(gw, scope, receive, send, MESSAGES)
