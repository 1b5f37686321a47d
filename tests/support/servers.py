"""Start an ASGI app on Granian (real worker processes) on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers below 500; fail if the server exits or stalls."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer in {timeout} s")
        time.sleep(0.1)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the process group started with ``start_new_session``; SIGKILL if stuck."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def granian(
    target: str, *, workers: int = 1, env: Mapping[str, str] | None = None, ready: str = "/"
) -> Iterator[str]:
    """Serve ``module:app`` with ``workers`` Granian workers; yields the base URL."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--workers", str(workers),
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        "--respawn-failed-workers", "--respawn-interval", "0.1", target,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=dict(env) if env is not None else None, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + ready, proc)
        yield base
    finally:
        stop_group(proc)
