"""The ``gemini`` adapter: OpenAI chat and embeddings in, Gemini API out, and back.

Config: ``base_url`` (default ``https://generativelanguage.googleapis.com/v1beta``),
``api_key`` (sent as the ``x-goog-api-key`` header, never in the URL, so it cannot leak
into access logs), and ``options.drop_unsupported``.  Chat goes to
``models/{model}:generateContent`` or ``:streamGenerateContent?alt=sse``; embeddings to
``models/{model}:batchEmbedContents``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from tollhouse.config import ProviderConfig
from tollhouse.errors import InvalidRequest
from tollhouse.providers._chat_shape import now
from tollhouse.providers._gemini_format import chat_to_gemini, gemini_to_chat
from tollhouse.providers._gemini_stream import GeminiToChat
from tollhouse.providers._http1 import encode_headers
from tollhouse.providers._translated import TranslatingProvider, include_usage, upstream_model
from tollhouse.providers.base import Call, Reply

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


class GeminiProvider(TranslatingProvider):
    kind = "gemini"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._base = config.base_url or GEMINI_BASE_URL
        headers = {"content-type": "application/json"}
        if config.api_key is not None:
            headers["x-goog-api-key"] = config.api_key.get()
        self._headers = encode_headers(headers)

    def _url(self, model: str, method: str) -> str:
        model = model.removeprefix("models/")
        return f"{self._base}/models/{model}:{method}"

    async def chat(self, call: Call) -> Reply:
        model = upstream_model(call)
        body = chat_to_gemini(call.body, drop_unsupported=self.drop_unsupported)
        data = await self.post_json(self._url(model, "generateContent"), body)
        return self.reply(gemini_to_chat(data, model=model, created=now()))

    async def chat_stream(self, call: Call) -> AsyncIterator[bytes]:
        model = upstream_model(call)
        body = chat_to_gemini(call.body, drop_unsupported=self.drop_unsupported)
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        resp = await self.post(url, body)
        t = GeminiToChat(
            id_=f"chatcmpl-{uuid.uuid4().hex}",
            model=model,
            created=now(),
            include_usage=include_usage(call),
        )
        return self.relay(resp, lambda _event, data: t.feed(data), t.finish, lambda: t.finished)

    async def embeddings(self, call: Call) -> Reply:
        model = upstream_model(call)
        raw = call.body.get("input")
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw):
            texts = raw
        else:
            raise InvalidRequest(
                "'input' must be a string or a non-empty array of strings for gemini embeddings",
                extra={"param": "input"},
            )
        dims = call.body.get("dimensions")
        requests: list[dict[str, Any]] = []
        for text in texts:
            req: dict[str, Any] = {
                "model": f"models/{model}",
                "content": {"parts": [{"text": text}]},
            }
            if dims is not None:
                req["outputDimensionality"] = dims
            requests.append(req)
        url = self._url(model, "batchEmbedContents")
        data = await self.post_json(url, {"requests": requests})
        vectors = [e.get("values", []) for e in data.get("embeddings") or [] if isinstance(e, dict)]
        return self.reply(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
                "model": model,
            }
        )
