"""A minimal Starlette app mounting ``control.routes`` over a real store (in-process ASGI)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from starlette.applications import Starlette

from tollhouse import control
from tollhouse.config import Config, Secret
from tollhouse.guard.keys import KeyCache
from tollhouse.store import SqlStore, open_store
from tollhouse.store.writer import SpendWriter

ADMIN = "adm_" + "s3cr3t" * 6


@dataclass
class Gw:
    config: Config
    store: SqlStore
    keys: KeyCache
    spend: SpendWriter


async def start_gw(url: str, admin: str | None = ADMIN) -> Gw:
    store = open_store(url)
    await store.open()
    gw = Gw(
        config=Config(admin_key=None if admin is None else Secret(admin)),
        store=store,
        keys=KeyCache(store, refresh_interval=0.1),
        spend=SpendWriter(store, interval=60),
    )
    await gw.keys.start()
    await gw.spend.start()
    return gw


async def stop_gw(gw: Gw) -> None:
    await gw.spend.stop()
    await gw.keys.stop()
    await gw.store.close()


def client_for(gw: Gw) -> httpx.AsyncClient:
    app = Starlette(routes=control.routes(gw))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
