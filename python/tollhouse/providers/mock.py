"""The deterministic ``mock`` provider: in process, or served over HTTP for tests/benches.

Same request, same answer.  Behaviour comes from the provider's ``options`` and may be
overridden per request by a ``mock`` object in the body (the OpenAI SDK's
``extra_body={"mock": {...}}``):

- ``reply`` (str): the answer text; ``latency_ms``: delay before the answer (or the
  first chunk); ``chunk_delay_ms``: delay between stream chunks; ``chunks``: how many
  content chunks (default: one per word); ``usage`` (bool, default true): report usage;
- ``error_status`` (int): answer with this status, on every request or, with
  ``error_every: N``, on every N-th; ``embedding_dim`` (int, default 8).

With ``tools`` (and ``tool_choice`` not ``"none"``) it calls the first function tool.
Prompt tokens are a deterministic estimate (a quarter of the messages' JSON length);
completion tokens are the number of words of the reply.

``python -m tollhouse.providers.mock --port 18000`` serves it as an OpenAI-shaped HTTP
upstream (``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from tollhouse.config import ProviderConfig
from tollhouse.errors import ConfigError, ProviderError, UpstreamHTTPError
from tollhouse.providers.base import Call, Provider, Reply

if TYPE_CHECKING:
    from aiohttp import web

DEFAULT_REPLY = "This is a deterministic reply from the Tollhouse mock provider."


@dataclass(frozen=True, slots=True)
class MockOptions:
    reply: str = DEFAULT_REPLY
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    chunks: int = 0
    usage: bool = True
    error_status: int = 0
    error_every: int = 0
    embedding_dim: int = 8


_NUMBERS = ("latency_ms", "chunk_delay_ms")
_INTS = ("chunks", "error_status", "error_every", "embedding_dim")


def parse_options(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate mock options; ``where`` prefixes messages (``providers.mock.options``)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "reply":
            if not isinstance(value, str):
                raise ConfigError(f"{where}.reply: expected a string")
        elif key == "usage":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.usage: expected true or false")
        elif key in _NUMBERS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}.{key}: expected a number >= 0")
            value = float(value)
        elif key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}.{key}: expected an integer >= 0")
            if key == "error_status" and value and not 400 <= value <= 599:
                raise ConfigError(f"{where}.error_status: expected a status in 400..599")
        else:
            raise ConfigError(f"{where}.{key}: unknown mock option")
        out[key] = value
    return out


class MockEngine:
    """Builds the deterministic answers; shared by the in-process and HTTP forms."""

    def __init__(self, options: Mapping[str, Any] | None = None, name: str = "mock") -> None:
        self.name = name
        self.options = MockOptions(**parse_options(options or {}, f"providers.{name}.options"))
        self._seq = itertools.count(1)

    def plan(self, body: Mapping[str, Any]) -> MockOptions:
        override = body.get("mock")
        if not isinstance(override, dict) or not override:
            return self.options
        try:
            return replace(self.options, **parse_options(override, "mock"))
        except ConfigError as exc:
            raise UpstreamHTTPError(400, _error_body(exc.message, "invalid_request")) from None

    def failure(self, plan: MockOptions) -> tuple[int, bytes] | None:
        """The injected error of this request, if any (counts every request)."""
        n = next(self._seq)
        if not plan.error_status:
            return None
        if plan.error_every and n % plan.error_every:
            return None
        return plan.error_status, _error_body(f"mock error {plan.error_status}", "mock_error")

    @staticmethod
    def prompt_tokens(body: Mapping[str, Any]) -> int:
        source = body.get("messages", body.get("input", ""))
        return max(1, len(orjson.dumps(source)) // 4)

    def completion(self, body: Mapping[str, Any], plan: MockOptions) -> dict[str, Any]:
        model = str(body.get("model", "mock-1"))
        n = _n(body)
        tool = _first_tool(body)
        words = plan.reply.split()
        if tool is not None:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [_tool_call(tool)],
            }
            finish, completion_tokens = "tool_calls", 8
        else:
            message = {"role": "assistant", "content": plan.reply}
            finish, completion_tokens = "stop", len(words)
        out: dict[str, Any] = {
            "id": f"chatcmpl-mock-{_digest(body)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ],
        }
        if plan.usage:
            out["usage"] = _usage(self.prompt_tokens(body), completion_tokens * n)
        return out

    def stream_events(self, body: Mapping[str, Any], plan: MockOptions) -> list[bytes]:
        """The SSE events of a streamed answer, ``data: [DONE]`` included."""
        model = str(body.get("model", "mock-1"))
        options = body.get("stream_options")
        with_usage = plan.usage and isinstance(options, dict) and bool(options.get("include_usage"))
        base = {
            "id": f"chatcmpl-mock-{_digest(body)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        n = _n(body)
        tool = _first_tool(body)

        def chunk(delta: dict[str, Any], finish: str | None, index: int) -> bytes:
            event: dict[str, Any] = {
                **base,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                event["usage"] = None
            return b"data: " + orjson.dumps(event) + b"\n\n"

        events: list[bytes] = []
        completion_tokens = 0
        for i in range(n):
            events.append(chunk({"role": "assistant", "content": ""}, None, i))
            if tool is not None:
                events.append(chunk({"tool_calls": [{"index": 0, **_tool_call(tool)}]}, None, i))
                events.append(chunk({}, "tool_calls", i))
                completion_tokens += 8
                continue
            words = plan.reply.split()
            for piece in _pieces(words, plan.chunks):
                events.append(chunk({"content": piece}, None, i))
            events.append(chunk({}, "stop", i))
            completion_tokens += len(words)
        if with_usage:
            usage = _usage(self.prompt_tokens(body), completion_tokens)
            final = {**base, "choices": [], "usage": usage}
            events.append(b"data: " + orjson.dumps(final) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events

    def embeddings(self, body: Mapping[str, Any], plan: MockOptions) -> dict[str, Any]:
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) else [raw]
        data = []
        for i, item in enumerate(inputs):
            seed = int(_digest({"input": item}), 16)
            vector = [((seed >> (j % 60)) % 1000) / 1000.0 for j in range(plan.embedding_dim)]
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = self.prompt_tokens(body)
        out: dict[str, Any] = {
            "object": "list",
            "data": data,
            "model": str(body.get("model", "mock-embed")),
        }
        if plan.usage:
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return out


class MockProvider(Provider):
    """The in-process form: no network, answers from ``MockEngine``."""

    kind = "mock"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.engine = MockEngine(config.options, config.name)

    def _prepare(self, call: Call) -> MockOptions:
        plan = self.engine.plan(call.body)
        failure = self.engine.failure(plan)
        if failure is not None:
            status, body = failure
            if status >= 500:
                raise ProviderError(f"provider {self.name!r} answered {status}")
            raise UpstreamHTTPError(status, body)
        return plan

    async def chat(self, call: Call) -> Reply:
        plan = self._prepare(call)
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        data = self.engine.completion(call.body, plan)
        return Reply(orjson.dumps(data), data)

    async def embeddings(self, call: Call) -> Reply:
        plan = self._prepare(call)
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        data = self.engine.embeddings(call.body, plan)
        return Reply(orjson.dumps(data), data)

    async def chat_stream(self, call: Call) -> AsyncIterator[bytes]:
        plan = self._prepare(call)
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        return _paced(self.engine.stream_events(call.body, plan), plan.chunk_delay_ms)


async def _paced(events: list[bytes], delay_ms: float) -> AsyncIterator[bytes]:
    for i, event in enumerate(events):
        if delay_ms and i:
            await asyncio.sleep(delay_ms / 1000)
        yield event


def _n(body: Mapping[str, Any]) -> int:
    n = body.get("n", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 16 else 1


def _first_tool(body: Mapping[str, Any]) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or body.get("tool_choice") == "none":
        return None
    for tool in tools:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            name = tool["function"].get("name")
            if isinstance(name, str):
                return name
    return None


def _tool_call(name: str) -> dict[str, Any]:
    return {
        "id": f"call_mock_{name}",
        "type": "function",
        "function": {"name": name, "arguments": '{"mock": true}'},
    }


def _pieces(words: list[str], chunks: int) -> list[str]:
    if not words:
        return []
    texts = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if chunks <= 0 or chunks >= len(texts):
        return texts
    size = -(-len(texts) // chunks)
    return ["".join(texts[i : i + size]) for i in range(0, len(texts), size)]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _digest(value: Any) -> str:
    return hashlib.blake2b(orjson.dumps(value), digest_size=8).hexdigest()


def _error_body(message: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": "mock_error", "code": code}})


# -- served over HTTP ------------------------------------------------------------------


def http_app(options: Mapping[str, Any] | None = None) -> web.Application:
    """The mock as an OpenAI-shaped aiohttp app (what an ``openai_compatible`` upstream sees)."""
    from aiohttp import web  # not for the in-process provider

    engine = MockEngine(options)

    async def _read(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=400, body=_error_body("malformed JSON", "invalid_json"))
        if not isinstance(body, dict):
            return web.Response(status=400, body=_error_body("expected an object", "invalid"))
        return body

    def _fail(plan: MockOptions) -> web.Response | None:
        failure = engine.failure(plan)
        if failure is None:
            return None
        status, payload = failure
        return web.Response(status=status, body=payload, content_type="application/json")

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await _read(request)
        if isinstance(body, web.Response):
            return body
        try:
            plan = engine.plan(body)
        except UpstreamHTTPError as exc:
            return web.Response(status=400, body=exc.upstream_body)
        if (failed := _fail(plan)) is not None:
            return failed
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        if not body.get("stream"):
            data = orjson.dumps(engine.completion(body, plan))
            return web.Response(body=data, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, event in enumerate(engine.stream_events(body, plan)):
            if plan.chunk_delay_ms and i:
                await asyncio.sleep(plan.chunk_delay_ms / 1000)
            await resp.write(event)
        await resp.write_eof()
        return resp

    async def embeddings(request: web.Request) -> web.Response:
        body = await _read(request)
        if isinstance(body, web.Response):
            return body
        plan = engine.plan(body)
        if (failed := _fail(plan)) is not None:
            return failed
        data = orjson.dumps(engine.embeddings(body, plan))
        return web.Response(body=data, content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        data = {"object": "list", "data": [{"id": "mock-1", "object": "model", "created": 0}]}
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    return app


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(description="Serve the mock provider over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    app = http_app({"latency_ms": args.latency_ms})
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
