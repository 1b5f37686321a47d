"""Fixtures: a control app over a real SQLite store in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.control._app import ADMIN, Gw, client_for, start_gw, stop_gw


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/control.db"


@pytest.fixture
async def gw(db_url: str) -> AsyncIterator[Gw]:
    g = await start_gw(db_url)
    try:
        yield g
    finally:
        await stop_gw(g)


@pytest.fixture
async def client(gw: Gw) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gw) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}
