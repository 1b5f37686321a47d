"""``tollhouse serve`` with a given config and one virtual key (over tests/support/gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.gateway import GatewayProcess, create_key, write_config


@dataclass
class Running:
    url: str  # http://127.0.0.1:PORT
    key: str
    db: str


@contextmanager
def gateway(tmp: Path, config: dict[str, Any]) -> Iterator[Running]:
    db = f"sqlite:///{tmp / 'tollhouse.db'}"
    path = write_config(tmp, {"store": db, **config})
    key, _ = create_key(db, "e2e")
    with GatewayProcess(path, tmp) as proc:
        yield Running(proc.base_url, key, db)
