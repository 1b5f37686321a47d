"""The shutdown spool: deliveries still pending at ``stop()`` as JSON lines.

A line names its endpoint by a SHA-256 of the URL, never the URL itself (Slack hooks
carry their secret in the path), so the file holds no credentials; on start the
dispatcher re-queues each line whose endpoint is still configured.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import orjson

from tollhouse.errors import InvalidRequest
from tollhouse.events.config import WebhookEndpoint
from tollhouse.events.types import Event

log = logging.getLogger("tollhouse.events")


def endpoint_ref(ep: WebhookEndpoint) -> str:
    return hashlib.sha256(ep.url.encode()).hexdigest()[:32]


def save(path: Path, items: Iterable[tuple[WebhookEndpoint, Event]]) -> int:
    """Append ``items``; returns how many were written.  The file is created 0600."""
    lines = [
        orjson.dumps({"endpoint": endpoint_ref(ep), "event": ev.payload()}) + b"\n"
        for ep, ev in items
    ]
    if not lines:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as f:
        f.writelines(lines)
        f.flush()
        os.fsync(f.fileno())
    return len(lines)


def load(
    path: Path, endpoints: Sequence[WebhookEndpoint]
) -> Iterator[tuple[WebhookEndpoint, Event]]:
    """Read and remove the spool; lines for endpoints no longer configured are skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    path.unlink()
    by_ref = {endpoint_ref(ep): ep for ep in endpoints}
    skipped = 0
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            ep = by_ref.get(row["endpoint"])
            event = Event.from_payload(row["event"])
        except (orjson.JSONDecodeError, KeyError, TypeError, InvalidRequest):
            log.warning("webhook spool %s line %d is malformed, skipped", path, n)
            continue
        if ep is None:
            skipped += 1
            continue
        yield ep, event
    if skipped:
        log.warning("webhook spool: %d deliveries for removed endpoints skipped", skipped)
