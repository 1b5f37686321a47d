"""Data-plane handlers (raw ASGI): chat completions, embeddings, models, health.

Each handler runs the pipeline stages in order and turns any ``TollhouseError`` into
the error envelope; an unexpected exception is logged and answered with a 500
envelope (a bug, never an input).  A watcher cancels the request when the client
disconnects, which closes the upstream connection; the spend row still records what
was used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from tollhouse.errors import ProviderError, TollhouseError
from tollhouse.gateway import Gateway
from tollhouse.metrics import METRICS
from tollhouse.providers import Reply
from tollhouse.proxy import asgi, budget, pipeline, security
from tollhouse.proxy._body import ClientGone, read_body
from tollhouse.proxy.pipeline import Exchange, Route, Usage
from tollhouse.proxy.stream import SSERelay
from tollhouse.routing import attempts
from tollhouse.routing.registry import Target
from tollhouse.store.base import KeyRecord

log = logging.getLogger("tollhouse.proxy")
CLIENT_CLOSED = 499


class DisconnectWatch:
    """Cancels the request's task when the client goes away (after the body was read)."""

    __slots__ = ("gone", "_owner", "_task")

    def __init__(self, receive: asgi.Receive) -> None:
        self.gone = False
        self._owner = asyncio.current_task()
        self._task = asyncio.get_running_loop().create_task(self._run(receive))

    async def _run(self, receive: asgi.Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                if self._owner is not None:
                    self._owner.cancel()
                return

    def stop(self) -> None:
        self._task.cancel()

    def absorb(self) -> bool:
        """After a CancelledError: True (and uncancel) when it was our disconnect cancel."""
        if not self.gone:
            return False
        if self._owner is not None:
            self._owner.uncancel()
        return True


async def _fail(send: asgi.Send, ex: Exchange, exc: TollhouseError) -> None:
    ex.status = exc.status
    ex.error_code = exc.code
    if ex.responded:
        # Headers are gone already: tell an SSE client in-band, then end the stream.
        event = b"data: " + exc.body_bytes() + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": False})
        return
    status, body, headers = asgi.error_response(exc)
    if status != exc.status:
        ex.status = status
    await asgi.send_bytes(send, status, body, [*headers, *pipeline.gate_headers(ex, cost=False)])


async def start_sse(send: asgi.Send, ex: Exchange) -> None:
    """The 200 answer's SSE headers; after them an error can only go in-band."""
    headers = [asgi.SSE, asgi.NO_CACHE, *pipeline.gate_headers(ex, cost=False)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    ex.responded = True


async def _internal(send: asgi.Send, ex: Exchange, exc: BaseException) -> None:
    log.error("internal error in %s", ex.request_id, exc_info=exc)
    ex.status, ex.error_code = 500, "internal_error"
    if not ex.responded:
        body = TollhouseError("internal error; see the gateway log").body_bytes()
        await asgi.send_bytes(
            send, 500, body, [asgi.JSON, (asgi.REQUEST_ID, ex.request_id.encode())]
        )


def _client_gone(ex: Exchange) -> None:
    ex.cancelled, ex.status, ex.error_code = True, CLIENT_CLOSED, "client_disconnected"


Fail = Callable[[asgi.Send, Exchange, TollhouseError], Awaitable[None]]


async def ended(
    send: asgi.Send,
    ex: Exchange,
    exc: BaseException,
    watch: DisconnectWatch | None,
    fail: Fail,
    *,
    gone: tuple[type[BaseException], ...],
) -> None:
    """How a data-plane request that raised ``exc`` ends: a typed error answer, a client
    that left, or a logged 500. A cancel that is not the client's, and anything that is
    not an ``Exception``, is raised again."""
    if isinstance(exc, TollhouseError):
        await fail(send, ex, exc)
    elif isinstance(exc, gone):  # OSError: a server that raises on send() to a closed client
        _client_gone(ex)
    elif isinstance(exc, asyncio.CancelledError):
        if watch is None or not watch.absorb():
            raise exc
        _client_gone(ex)
    elif isinstance(exc, Exception):
        await _internal(send, ex, exc)
    else:
        raise exc


async def finish(gw: Gateway, ex: Exchange, watch: DisconnectWatch | None) -> None:
    """Every data-plane request ends here: settle what was used (also when cancelled),
    release the reservations and record the spend row."""
    if watch is not None:
        watch.stop()
    if ex.route is not None and ex.usage is None and ex.cancelled:
        pipeline.settle(gw, ex, pipeline.estimate_usage(ex, ""))
    await budget.settle(gw, ex)
    await security.settle(gw, ex)
    pipeline.record(gw, ex)
    ex.stage("settle")


def reply_data(ex: Exchange, reply: Reply) -> dict[str, Any]:
    """The parsed JSON of a 2xx upstream answer; a body that is not JSON is a 502."""
    if reply.data is None:
        name = ex.route.provider.name if ex.route is not None else "?"
        raise ProviderError(f"provider {name!r} answered with invalid JSON")
    return reply.data


def settle_completion(gw: Gateway, ex: Exchange, data: dict[str, Any]) -> Usage:
    """Settle a chat completion: its usage (the Rust core's estimate, ``estimated``, when
    the upstream reported none) priced and kept, and its finish reason."""
    usage = pipeline.usage_from(data)
    if usage is None:
        usage = pipeline.estimate_usage(ex, pipeline.completion_text(data))
    pipeline.settle(gw, ex, usage)
    ex.finish_reason = pipeline.first_finish_reason(data)
    return usage


async def admitted(
    gw: Gateway,
    ex: Exchange,
    key: KeyRecord,
    headers: list[asgi.Header],
    receive: asgi.Receive,
    parse: Callable[[bytes], dict[str, Any]],
    *,
    output: bool = True,
) -> tuple[dict[str, Any], bytes | None]:
    """The stages before routing, for every format: the authenticated ``key``, the body
    read and parsed (it names the model), resolve, security, limits.  Returns the body
    and the bytes to send upstream (None once security changed the body)."""
    ex.key = key
    ex.stage("auth")
    raw = await read_body(receive, headers, gw.max_body_bytes)
    body = ex.body = parse(raw)
    ex.route = pipeline.resolve(gw, key, body["model"])
    ex.stage("parse")
    sent = await security.inbound(gw, ex, headers, raw)
    ex.stage("security")
    await budget.admit(gw, ex, headers, output=output)
    ex.stage("limits")
    return body, sent


# (gw, ex, planned targets, parsed body, body bytes to send or None, send)
Answer = Callable[
    [Gateway, Exchange, list[Target], dict[str, Any], bytes | None, asgi.Send], Awaitable[None]
]


async def _serve(
    gw: Gateway,
    scope: asgi.Scope,
    receive: asgi.Receive,
    send: asgi.Send,
    parse: Callable[[bytes], dict[str, Any]],
    answer: Answer,
    *,
    output: bool,
    stream: Answer | None = None,
) -> None:
    """An OpenAI-format request: the stages before the upstream call (auth, body, parse,
    resolve, security, limits, plan), then ``answer`` (``stream`` for ``"stream": true``);
    every end goes through ``ended`` and ``finish``."""
    ex = Exchange()
    headers: list[asgi.Header] = scope["headers"]
    watch: DisconnectWatch | None = None
    try:
        key = pipeline.authenticate(gw, headers)
        body, sent = await admitted(gw, ex, key, headers, receive, parse, output=output)
        targets = budget.allowed_targets(ex, attempts.plan(gw, ex, body))
        watch = DisconnectWatch(receive)
        ex.stage("route")
        if stream is not None and body.get("stream") is True:
            ex.stream = True
            await stream(gw, ex, targets, body, sent, send)
        else:
            await answer(gw, ex, targets, body, sent, send)
    except BaseException as exc:  # noqa: BLE001 - ended() re-raises what must propagate
        await ended(send, ex, exc, watch, _fail, gone=(ClientGone, OSError))
    finally:
        await finish(gw, ex, watch)


async def chat_completions(
    gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send
) -> None:
    await _serve(
        gw, scope, receive, send, pipeline.parse_chat, _complete, output=True, stream=_stream
    )


async def _complete(
    gw: Gateway,
    ex: Exchange,
    targets: list[Target],
    body: dict[str, Any],
    raw: bytes | None,
    send: asgi.Send,
) -> None:
    async def chat(route: Route, target: Target) -> Reply:
        return await route.provider.chat(attempts.make_call(body, raw, target))

    reply = await attempts.run(gw, ex, targets, chat)
    ex.stage("upstream")
    data = reply_data(ex, reply)
    settle_completion(gw, ex, data)
    out = security.scan_reply(gw, ex, data, reply.body)
    await security.audit_reply(gw, ex, data)
    await security.snapshot_header(ex)
    headers = [(b"content-type", reply.content_type), *pipeline.gate_headers(ex, cost=True)]
    await asgi.send_bytes(send, 200, out, headers)
    ex.stage("respond")


async def _stream(
    gw: Gateway,
    ex: Exchange,
    targets: list[Target],
    body: dict[str, Any],
    raw: bytes | None,
    send: asgi.Send,
) -> None:
    """Relay an SSE stream; errors after the headers go in-band (``ex.responded``).
    Fails over to the next deployment only before the upstream's first byte."""
    options = body.get("stream_options")
    client_usage = isinstance(options, dict) and options.get("include_usage") is True

    async def open_(route: Route, target: Target) -> AsyncIterator[bytes]:
        call = attempts.make_call(body, raw, target)
        if not client_usage:
            call.set("stream_options", {**(options or {}), "include_usage": True})
        return await attempts.open_stream(gw, route, target, call)

    chunks = await attempts.run(gw, ex, targets, open_)
    ex.stage("upstream")  # the upstream's first byte
    relay = SSERelay(
        client_usage=client_usage,
        cost_of=lambda usage: pipeline.price(gw, ex, usage),
        estimate=lambda text: pipeline.estimate_usage(ex, text),
    )
    scanner = security.stream_scanner(gw, ex)
    await security.snapshot_header(ex)
    try:
        await start_sse(send, ex)
        async for chunk in chunks:
            if ex.ttft_s is None:
                ex.ttft_s = time.perf_counter() - ex.started
            out = relay.feed(chunk)
            if scanner is not None:
                out = scanner.feed(out)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
        tail = relay.finish()
        if scanner is not None:
            tail = scanner.feed(tail) + scanner.finish()
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        ex.stage("relay")  # the whole stream, first byte to last
    finally:
        await attempts.aclose(chunks)
        if relay.usage is None:
            relay.finish()
        if relay.usage is not None:
            ex.usage = relay.usage
            ex.cost_micros = relay.cost_micros
        ex.finish_reason = relay.finish_reason


async def embeddings(
    gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send
) -> None:
    await _serve(gw, scope, receive, send, pipeline.parse_embeddings, _embed, output=False)


async def _embed(
    gw: Gateway,
    ex: Exchange,
    targets: list[Target],
    body: dict[str, Any],
    raw: bytes | None,
    send: asgi.Send,
) -> None:
    async def embed(route: Route, target: Target) -> Reply:
        return await route.provider.embeddings(attempts.make_call(body, raw, target))

    reply = await attempts.run(gw, ex, targets, embed)
    ex.stage("upstream")
    usage = pipeline.usage_from(reply_data(ex, reply)) or pipeline.estimate_usage(ex, "")
    pipeline.settle(gw, ex, usage)
    out = [(b"content-type", reply.content_type), *pipeline.gate_headers(ex, cost=True)]
    await asgi.send_bytes(send, 200, reply.body, out)
    ex.stage("respond")


async def models(gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    """``GET /v1/models``: the models this key may call, in the OpenAI list shape."""
    ex = Exchange()
    try:
        key = pipeline.authenticate(gw, scope["headers"])
    except TollhouseError as exc:
        await _fail(send, ex, exc)
        return
    data: list[dict[str, Any]] = [
        {"id": name, "object": "model", "created": 0, "owned_by": m.deployments[0].provider}
        for name, m in gw.models.items()
        if pipeline.key_allows(key, name) or pipeline.key_allows(key, m.name)
    ]
    await asgi.send_json(send, 200, {"object": "list", "data": data})


_OK = orjson.dumps({"status": "ok"})


async def healthz(gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    await asgi.send_bytes(send, 200, _OK, [asgi.JSON])


async def readyz(gw: Gateway, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    """Ready when started and the store answers (bounded wait)."""
    store_ok = False
    if gw.started:
        try:
            store_ok = bool(await asyncio.wait_for(gw.store.ping(), timeout=2.0))
        except Exception as exc:  # any store failure means "not ready", with the reason
            log.warning("readyz: store ping failed: %s", exc)
    status = 200 if store_ok else 503
    METRICS.set_backend_up("store", store_ok)
    body: dict[str, object] = {"status": "ok" if store_ok else "unavailable", "store": store_ok}
    # Counters: {backend, ok, fail_mode, mode}; a Redis outage is reported, and the
    # gateway stays ready (fail_mode decides what budgeted requests get meanwhile).
    body["counters"] = gw.limits.health()
    await asgi.send_json(send, status, body)
