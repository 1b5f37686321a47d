"""What every provider adapter offers the pipeline, and the pooled upstream HTTP client.

A provider takes an OpenAI-shaped request (``Call``) and answers with the upstream's
bytes (``Reply``) or, for a stream, with an async iterator of raw SSE bytes.  Upstream
4xx answers raise ``UpstreamHTTPError`` (passed back to the client with their status);
5xx, timeouts and connection errors raise ``ProviderError`` (502).  Nothing here logs or
echoes a provider key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from tollhouse.config import ProviderConfig
from tollhouse.errors import ProviderError, UpstreamHTTPError
from tollhouse.providers._http1 import (
    BadResponse,
    Client,
    ConnectFailed,
    Disconnected,
    HTTPClientError,
    Response,
)

_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(slots=True)
class Call:
    """One upstream request: the parsed body, and its raw bytes while they still match."""

    body: dict[str, Any]
    raw: bytes | None
    model: str

    def payload(self) -> bytes:
        """The bytes to send: the client's own when unchanged, else one serialisation."""
        if self.raw is None:
            self.raw = orjson.dumps(self.body)
        return self.raw

    def set(self, field: str, value: Any) -> None:
        """Change one body field (invalidates the raw bytes)."""
        self.body[field] = value
        self.raw = None


@dataclass(slots=True)
class Reply:
    """A complete 2xx upstream answer: bytes for the client, parsed JSON for the pipeline."""

    body: bytes
    data: dict[str, Any] | None
    content_type: bytes = b"application/json"


class Provider(ABC):
    """An upstream adapter.  ``start``/``close`` run inside the serving event loop."""

    kind: str = ""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name

    @property
    def has_key(self) -> bool:
        """Whether the provider can be called (a key is configured or none is needed)."""
        return True

    async def start(self) -> None:  # noqa: B027 - optional hook
        pass

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    async def chat(self, call: Call) -> Reply: ...

    @abstractmethod
    async def chat_stream(self, call: Call) -> AsyncIterator[bytes]:
        """Open the stream (raising on a non-2xx answer) and return its raw SSE bytes."""

    @abstractmethod
    async def embeddings(self, call: Call) -> Reply: ...


class HTTPProvider(Provider):
    """An adapter with one pooled upstream client, opened inside the serving loop.

    Subclasses set ``_headers`` (encoded once by ``_http1.encode_headers``) and say where
    each call goes; ``forward``/``forward_stream`` are the raw pass-through calls.
    """

    _headers: bytes = b""

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._session: Client | None = None

    @property
    def has_key(self) -> bool:
        return self.config.api_key is not None

    async def start(self) -> None:
        if self._session is None:
            self._session = upstream_client(self.config)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, url: str, body: bytes) -> Response:
        """POST ``body``; a non-2xx answer raises (``raise_for_upstream``)."""
        if self._session is None:
            raise ProviderError(f"provider {self.name!r} is not started")
        try:
            resp = await self._session.request("POST", url, body, self._headers)
        except (TimeoutError, HTTPClientError) as exc:
            raise upstream_failure(self.name, exc) from None
        await raise_for_upstream(self.name, resp)
        return resp

    async def read(self, resp: Response) -> bytes:
        """The whole answer body; the connection goes back to the pool."""
        try:
            return await resp.read()
        except (TimeoutError, HTTPClientError) as exc:
            raise upstream_failure(self.name, exc) from None
        finally:
            resp.release()

    async def relay_raw(self, resp: Response) -> AsyncGenerator[bytes, None]:
        """The upstream's bytes untouched, as they arrive."""
        try:
            async for piece in resp.iter_chunks():
                yield piece
        except (TimeoutError, HTTPClientError) as exc:
            raise upstream_failure(self.name, exc) from None
        finally:
            # Releasing an unfinished answer drops the connection, so the upstream sees
            # the cancel when the client went away.
            resp.release()

    async def forward(self, url: str, call: Call) -> Reply:
        """Raw pass-through: the call's bytes to ``url``, the 2xx answer as it came."""
        resp = await self.send(url, call.payload())
        body = await self.read(resp)
        ctype = resp.headers.get("content-type", "application/json").encode("latin-1")
        return Reply(body, parse_json_object(body), ctype)

    async def forward_stream(self, url: str, call: Call) -> AsyncIterator[bytes]:
        """Raw pass-through of a stream: opened here (raising on a non-2xx answer), its
        bytes relayed untouched."""
        return self.relay_raw(await self.send(url, call.payload()))


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The upstream answer as a JSON object, or None when it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def upstream_client(config: ProviderConfig, *, limit: int = 256) -> Client:
    """A pooled keep-alive client with the provider's connect/read/total timeouts."""
    return Client(
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        total_timeout=config.total_timeout,
        limit=limit,
    )


def upstream_failure(provider: str, exc: BaseException) -> ProviderError:
    """A 502 naming the provider and the kind of failure (never the URL's credentials)."""
    if isinstance(exc, TimeoutError):
        return ProviderError(f"provider {provider!r} timed out")
    if isinstance(exc, ConnectFailed):
        return ProviderError(f"provider {provider!r} is unreachable (connection failed)")
    if isinstance(exc, Disconnected):
        return ProviderError(f"provider {provider!r} closed the connection")
    if isinstance(exc, BadResponse):
        return ProviderError(f"provider {provider!r} sent a malformed answer: {exc}")
    return ProviderError(f"provider {provider!r} failed: {type(exc).__name__}")


async def raise_for_upstream(provider: str, resp: Response) -> None:
    """Turn a non-2xx answer into the error the client should see."""
    status = resp.status
    if status < 300:
        return
    # Retry-After rides on the error (routing waits it out; a 429 passes it back).
    hint = resp.headers.get("retry-after")
    headers = {"retry-after": hint} if hint else None
    try:
        body = await resp.read(_ERROR_BODY_LIMIT)
    except (TimeoutError, HTTPClientError):
        body = b""
    finally:
        resp.release()
    if 400 <= status < 500:
        ctype = resp.headers.get("content-type", "application/json")
        if not body:
            body = orjson.dumps({"error": {"message": f"upstream answered {status}"}})
        exc = UpstreamHTTPError(status, body, ctype)
        exc.headers.update(headers or {})
        raise exc
    raise ProviderError(f"provider {provider!r} answered {status}", headers=headers)
