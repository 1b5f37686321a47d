"""A minimal Starlette app mounting ``control.routes`` over a real store (in-process ASGI)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from tests.support.gateway import bearer

from tollhouse import control
from tollhouse.config import Config, Secret
from tollhouse.events.dispatcher import WebhookDispatcher
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


@dataclass
class EventsGw(Gw):
    """With the webhook dispatcher that verify, a rule's test and the evaluator send with."""

    events: WebhookDispatcher | None = None


@contextlib.asynccontextmanager
async def events_gw(url: str) -> AsyncIterator[EventsGw]:
    """A started ``EventsGw`` (its dispatcher may reach 127.0.0.1), stopped on exit."""
    base = await start_gw(url)
    events = WebhookDispatcher(allow_private=["127.0.0.1"])
    gw = EventsGw(base.config, base.store, base.keys, base.spend, events)
    await events.start()
    try:
        yield gw
    finally:
        await events.stop()
        await stop_gw(gw)


def client_for(gw: Gw) -> httpx.AsyncClient:
    app = Starlette(routes=control.routes(gw))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def workspace_key(
    client: httpx.AsyncClient, admin: dict[str, str], role: str, ws: str = "default"
) -> dict[str, str]:
    """The bearer header of a new API key with ``role`` in workspace ``ws``."""
    r = await client.post(
        f"/v1/workspaces/{ws}/api-keys", json={"name": role, "role": role}, headers=admin
    )
    assert r.status_code == 201, r.text
    return bearer(r.json()["key"])
