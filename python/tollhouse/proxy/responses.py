"""``POST /v1/responses``: the OpenAI Responses API in front of any provider.

OpenAI-family upstreams that serve the Responses API themselves (``openai``;
``openai_compatible`` with ``options.responses_api: true``; ``azure`` with
``api_version: v1``) get the client's request untouched apart from the upstream model
name, and their answer or stream comes back byte for byte.  Every other provider is
reached through chat: the request is translated, and the answer is rebuilt as a
Response object or a Responses event stream.  Tollhouse stores no responses, so
``previous_response_id`` is a 400 on the translated path.
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import TollhouseError
from tollhouse.gateway import Gateway
from tollhouse.providers import Call
from tollhouse.providers._responses_format import chat_to_response, responses_to_chat
from tollhouse.providers._responses_stream import ChatToResponses
from tollhouse.providers._sse import encode_event
from tollhouse.providers.openai import OpenAIProvider
from tollhouse.proxy import asgi, pipeline
from tollhouse.proxy._dialect import (
    Dialect,
    StreamTranslator,
    native_body,
    relay_native,
    serve,
    timed,
)
from tollhouse.proxy.pipeline import Exchange, Usage
from tollhouse.proxy.routes import reply_data


def _id(ex: Exchange) -> str:
    return f"resp_{ex.request_id}"


def _model(ex: Exchange, client: dict[str, Any]) -> str:
    return str(client.get("model") or (ex.route.model if ex.route else ""))


def _reply(data: dict[str, Any], ex: Exchange, client: dict[str, Any]) -> dict[str, Any]:
    return chat_to_response(
        data, request=client, id_=_id(ex), model=_model(ex, client), created=int(ex.created_at)
    )


def _stream(ex: Exchange, client: dict[str, Any]) -> StreamTranslator:
    return ChatToResponses(
        id_=_id(ex), model=_model(ex, client), created=int(ex.created_at), request=client
    )


def _set_usage(conv: StreamTranslator, usage: dict[str, Any]) -> None:
    assert isinstance(conv, ChatToResponses)  # noqa: S101 - built by _stream
    conv.usage = usage


def _stream_error(conv: StreamTranslator, exc: TollhouseError) -> bytes:
    assert isinstance(conv, ChatToResponses)  # noqa: S101 - built by _stream
    return b"".join(encode_event(data, name) for name, data in conv.failed(exc.message))


def usage_of_response(data: dict[str, Any]) -> Usage | None:
    """Usage of a Response object or of a stream event that carries one."""
    response = data.get("response") if "response" in data else data
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=_int(usage.get("input_tokens")),
        completion_tokens=_int(usage.get("output_tokens")),
        cached_tokens=_int(cached),
    )


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


async def _native(gw: Gateway, ex: Exchange, client: dict[str, Any], send: asgi.Send) -> bool:
    assert ex.route is not None  # noqa: S101 - resolved before
    provider = ex.route.provider
    if not isinstance(provider, OpenAIProvider):
        return False
    url = provider.responses_url()
    if url is None:
        return False
    body = native_body(ex, client)
    call = Call(body, None, ex.route.upstream_model)
    if body.get("stream") is True:
        ex.stream = True
        chunks = await timed(ex, provider.forward_stream(url, call))
        await relay_native(gw, ex, chunks, send, usage_of_response, '"usage":{')
        return True
    reply = await timed(ex, provider.forward(url, call))
    usage = usage_of_response(reply_data(ex, reply)) or pipeline.estimate_usage(ex, "")
    pipeline.settle(gw, ex, usage)
    headers = [(b"content-type", reply.content_type), *pipeline.gate_headers(ex, cost=True)]
    await asgi.send_bytes(send, 200, reply.body, headers)
    return True


RESPONSES = Dialect(
    name="responses",
    to_chat=responses_to_chat,
    reply=_reply,
    stream=_stream,
    set_usage=_set_usage,
    error_body=lambda exc: exc.body_bytes(),
    stream_error=_stream_error,
    native=_native,
)


async def responses(gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    await serve(gw, scope, receive, send, RESPONSES)
