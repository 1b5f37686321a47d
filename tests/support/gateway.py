"""Run a real ``tollhouse serve`` for tests, and make keys for it.

``GatewayProcess`` writes nothing itself: give it a config file (``write_config``) and a
working directory; it starts ``python -m tollhouse serve`` on a free port, waits for
``/healthz`` and stops it on exit.  ``create_key`` writes a key straight into the
gateway's store (the key cache picks it up within its refresh interval).

For in-process tests, ``asgi_request`` drives the ASGI app directly (no server).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tollhouse.app import App, build_app
from tollhouse.config import parse_config
from tollhouse.guard.keys import generate_key, hash_key, key_label
from tollhouse.store import open_store
from tollhouse.store.base import KeyRecord


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    path = directory / "tollhouse.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def upstream_config(directory: Path, upstream_url: str, **extra: Any) -> dict[str, Any]:
    """A config with one OpenAI-compatible upstream serving ``gpt-4o-mini`` and ``embed``."""
    config: dict[str, Any] = {
        "store": f"sqlite:///{directory / 'tollhouse.db'}",
        "providers": {
            "up": {"kind": "openai_compatible", "base_url": upstream_url, "api_key": "sk-up"},
            "mock": {"kind": "mock"},
        },
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "up", "model": "gpt-4o-mini"}]},
            "renamed": {"deployments": [{"provider": "up", "model": "upstream-name"}]},
            "embed": {"deployments": [{"provider": "up", "model": "text-embedding-3-small"}]},
            "mock-1": {"deployments": [{"provider": "mock", "model": "mock-1"}]},
        },
        "pricing": {
            "gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60},
            "renamed": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            "embed": {"input_per_mtok": 0.02, "output_per_mtok": 0.0},
            "mock-1": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        # Tests share one upstream and inject failures on purpose: keep retries quick
        # and the breaker out of the way (tests/routing covers it).
        "routing": {"backoff_base_ms": 5, "breaker": {"failures": 1000, "min_requests": 1000}},
    }
    config.update(extra)
    return config


async def acreate_key(
    store_url: str,
    name: str = "test",
    *,
    models: Sequence[str] | None = None,
    **fields: Any,
) -> tuple[str, KeyRecord]:
    """A new raw key and its record (any other ``KeyRecord`` field as a keyword:
    ``disabled=``, ``expires_at=``, ``rpm=``, ``metadata=``, ...), written to the store
    at ``store_url``."""
    raw = generate_key()
    now = time.time()
    record = KeyRecord(
        hash=hash_key(raw),
        name=name,
        label=key_label(raw),
        created_at=now,
        updated_at=now,
        models=tuple(models) if models is not None else None,
        **fields,
    )
    store = open_store(store_url)
    await store.open()
    try:
        await store.create_key(record)
    finally:
        await store.close()
    return raw, record


async def add_key(store_url: str, name: str = "test", **metadata: Any) -> str:
    """``acreate_key`` with key metadata (``audit=``, ``preset=``, ...) for tests that
    need only the raw key."""
    raw, _ = await acreate_key(store_url, name, metadata=metadata)
    return raw


def create_key(
    store_url: str, name: str = "test", *, models: Sequence[str] | None = None, **fields: Any
) -> tuple[str, KeyRecord]:
    """``acreate_key`` for sync code."""
    return asyncio.run(acreate_key(store_url, name, models=models, **fields))


class GatewayProcess:
    """``tollhouse serve --config FILE`` on a free port, stopped on exit."""

    def __init__(
        self,
        config: Path | None,
        cwd: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.cwd = cwd
        self.workers = workers
        self.env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"gateway-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        cmd = [sys.executable, "-m", "tollhouse", "serve", "--port", str(self.port)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        cmd += ["--workers", str(self.workers)]
        env = {**os.environ, **self.env}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited ({self.proc.returncode}):\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway did not become ready:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@asynccontextmanager
async def running_app(config: dict[str, Any]) -> AsyncIterator[App]:
    """The in-process app for ``config``, its gateway started for the block and stopped
    after (drive it with ``asgi_request``)."""
    app = build_app(parse_config(config))
    await app.gw.start()
    try:
        yield app
    finally:
        await app.gw.stop()


async def asgi_request(
    app: Any,
    method: str,
    path: str,
    *,
    body: bytes | Sequence[bytes] = b"",
    headers: Sequence[tuple[str, str]] = (),
    disconnect_after: float | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Drive an ASGI app in process: status, headers and the whole body.

    ``body`` as a sequence of parts is sent as a chunked body (``more_body``).  With
    ``disconnect_after`` the client reports ``http.disconnect`` after that many seconds.
    """
    parts = [body] if isinstance(body, bytes) else list(body)
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "scheme": "http",
        "server": ("127.0.0.1", 4000),
        "client": ("127.0.0.1", 50000),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        if disconnect_after is not None:
            await asyncio.sleep(disconnect_after)
        else:
            await gone.wait()
        return {"type": "http.disconnect"}

    status = 0
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.update({k.decode(): v.decode() for k, v in message["headers"]})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    gone.set()
    return status, out_headers, b"".join(chunks)


class Stack:
    """A test upstream, a gateway subprocess in front of it, and a key for it."""

    def __init__(self, directory: Path, upstream: Any, **config_extra: Any) -> None:
        self.dir = directory
        self.upstream = upstream
        self.config = upstream_config(directory, upstream.url, **config_extra)
        self.store_url: str = self.config["store"]
        self.config_path = write_config(directory, self.config)
        self.key, self.record = create_key(self.store_url, "stack")
        self.gateway = GatewayProcess(self.config_path, directory)

    @property
    def url(self) -> str:
        return self.gateway.url

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json"}

    def generation(self, request_id: str, timeout: float = 5.0) -> Any:
        """The spend row of a request, waiting for the background writer."""

        async def get() -> Any:
            store = open_store(self.store_url)
            await store.open()
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    row = await store.get_generation(request_id)
                    if row is not None:
                        return row
                    await asyncio.sleep(0.05)
                return None
            finally:
                await store.close()

        return asyncio.run(get())
