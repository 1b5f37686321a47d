"""SQLite persistence across a gateway restart, and the zero-config ``serve``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from tests.support.gateway import GatewayProcess, Stack, create_key
from tests.support.upstream import Upstream


def test_spend_and_keys_survive_a_restart(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream
) -> None:
    s = Stack(tmp_path_factory.mktemp("restart"), upstream)
    ids = []
    with s.gateway:
        with openai.OpenAI(base_url=s.url, api_key=s.key, max_retries=0) as c:
            for _ in range(3):
                raw = c.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
                ids.append(raw.headers["x-gate-request-id"])
    # stopped (SIGINT): the spend writer flushed on the way out
    again = GatewayProcess(s.config_path, s.dir)
    with again:
        for request_id in ids:
            resp = httpx.get(
                f"{again.url}/generation", params={"id": request_id}, headers=s.headers()
            )
            assert resp.status_code == 200, resp.text
        with openai.OpenAI(base_url=again.url, api_key=s.key, max_retries=0) as c:
            assert c.chat.completions.create(
                model="mock-1", messages=[{"role": "user", "content": "x"}]
            ).choices


def test_zero_config_serve_uses_mock_and_sqlite_in_cwd(tmp_path: Path) -> None:
    gw = GatewayProcess(None, tmp_path)
    with gw:
        assert (tmp_path / "tollhouse.db").exists()
        raw, _ = create_key(f"sqlite:///{tmp_path / 'tollhouse.db'}", "newcomer")
        with openai.OpenAI(base_url=gw.url, api_key=raw, max_retries=0) as c:
            deadline = time.monotonic() + 3
            while True:
                try:
                    reply = c.chat.completions.create(
                        model="mock-1", messages=[{"role": "user", "content": "hello"}]
                    )
                    break
                except openai.AuthenticationError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
        assert reply.choices[0].message.content
    out = gw.output()
    assert "tollhouse keys create --name" in out


def test_workers_refused_with_memory_counters(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tollhouse", "serve", "--workers", "2", "--port", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "counters: memory" in proc.stderr and "redis" in proc.stderr
