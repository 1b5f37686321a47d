"""A throwaway PostgreSQL server on 127.0.0.1 for the test session.

``postgres_server`` (session scope) runs ``initdb`` + ``pg_ctl start`` from
``/usr/lib/postgresql/*/bin`` in a temporary directory (as the ``postgres`` user when the
tests run as root, since PostgreSQL refuses to run as root) and yields its admin URL;
``postgres_url`` (function scope) creates a fresh database per test and drops it after.
Missing binaries fail the test clearly; nothing is skipped.

Use from a conftest::

    from tests.support.postgres import postgres_server, postgres_url  # noqa: F401
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> Path:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(the CI script installs the 'postgresql' package)"
        )
    return found[-1].parent


def _run(cmd: list[str], run_as: dict[str, Any], **kw: Any) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **run_as, **kw)
    if proc.returncode != 0:
        pytest.fail(f"{Path(cmd[0]).name} failed ({proc.returncode}): {proc.stderr[-2000:]}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="tollhouse-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "cwd": base}
    data = base / "data"
    port = _free_port()
    user = "tollhouse"
    _run(
        [str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"]
        + ["--no-sync", "--no-instructions"],
        run_as,
    )
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    pg_ctl = str(bindir / "pg_ctl")
    _run([pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"], run_as)
    try:
        yield PostgresServer(port=port, user=user)
    finally:
        subprocess.run(
            [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
            **run_as,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url(name)
    finally:
        with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
