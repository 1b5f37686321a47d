"""A real ``tollhouse serve`` subprocess on 127.0.0.1 with a config and one virtual key."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tollhouse.guard.keys import generate_key, hash_key, key_label
from tollhouse.store import open_store
from tollhouse.store.base import KeyRecord


@dataclass
class Running:
    url: str  # http://127.0.0.1:PORT
    key: str
    db: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _create_key(store_url: str) -> str:
    raw = generate_key()
    store = open_store(store_url)
    await store.open()
    try:
        now = time.time()
        await store.create_key(
            KeyRecord(
                hash=hash_key(raw), name="e2e", label=key_label(raw), created_at=now, updated_at=now
            )
        )
    finally:
        await store.close()
    return raw


@contextmanager
def gateway(tmp: Path, config: dict[str, Any]) -> Iterator[Running]:
    port = _free_port()
    db = f"sqlite:///{tmp / 'tollhouse.db'}"
    config = {"server": {"host": "127.0.0.1", "port": port}, "store": db, **config}
    path = tmp / "tollhouse.yaml"
    path.write_text(yaml.safe_dump(config))
    key = asyncio.run(_create_key(db))
    log = open(tmp / "gateway.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollhouse", "serve", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError("gateway exited:\n" + (tmp / "gateway.log").read_text())
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "gateway did not become healthy:\n" + (tmp / "gateway.log").read_text()
                )
            time.sleep(0.1)
        yield Running(url, key, db)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
