"""Snapshots: before an AI request runs, ask the key's snapshot endpoint to capture the
caller's code state (the proxy document's snapshot protocol).

A key turns it on with ``metadata["snapshot"] = {"url": "https://…/snapshot",
"enabled": true}`` (``enabled`` false: only requests sending ``x-gate-snapshot: true``).
The POST runs concurrently with the upstream call and is bounded by ``timeout_s``
(default 2 s); whatever happens to it (slow, refused, malformed answer, SSRF-blocked
address) the LLM request goes on and only ``x-gate-snapshot-id`` is missing.
Destinations pass the webhook SSRF guard (``webhooks.allow_private``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from tollhouse.events.ssrf import SSRFGuard
from tollhouse.store.base import KeyRecord

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("tollhouse.guard")

SNAPSHOT_FIELD: Final = "snapshot"
DEFAULT_TIMEOUT_S: Final = 2.0
MAX_ID: Final = 200


def snapshot_url(key: KeyRecord | None, forced: bool) -> str | None:
    """The key's snapshot endpoint when this request takes a snapshot."""
    conf = key.metadata.get(SNAPSHOT_FIELD) if key is not None else None
    if not isinstance(conf, Mapping):
        return None
    url = conf.get("url")
    if not isinstance(url, str) or not url:
        return None
    return url if forced or conf.get("enabled") is True else None


def _timeout(key: KeyRecord | None) -> float:
    conf = key.metadata.get(SNAPSHOT_FIELD) if key is not None else None
    value = conf.get("timeout_s") if isinstance(conf, Mapping) else None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 30
    return float(value) if ok else DEFAULT_TIMEOUT_S  # type: ignore[arg-type]


def snapshot_request(
    key: KeyRecord | None, session_id: str | None, model: str, now: datetime | None = None
) -> dict[str, Any]:
    ts = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "action": "snapshot",
        "virtualKey": key.name if key is not None else None,
        "sessionId": session_id,
        "model": model,
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
    }


class Snapshotter:
    def __init__(self, guard: SSRFGuard) -> None:
        self.guard = guard
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp  # only once a snapshot is sent (~10 MiB per worker otherwise)

            from tollhouse.events.resolver import GuardedResolver

            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard), limit=50)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def take(self, url: str, key: KeyRecord | None, payload: dict[str, Any]) -> str | None:
        """The snapshot id, or None (never raises; bounded by the key's timeout)."""
        try:
            return await asyncio.wait_for(self._post(url, payload), _timeout(key))
        except TimeoutError:
            log.warning("snapshot endpoint timed out (key %s)", payload.get("virtualKey"))
        except Exception as exc:  # a failing endpoint never fails the LLM request
            log.warning("snapshot failed (key %s): %s", payload.get("virtualKey"), exc)
        return None

    async def _post(self, url: str, payload: dict[str, Any]) -> str | None:
        self.guard.check_url(url)
        async with self._client().post(url, json=payload) as resp:
            if resp.status >= 300:
                log.warning("snapshot endpoint answered %d", resp.status)
                return None
            data = await resp.json(content_type=None)
        sid = data.get("snapshotId") if isinstance(data, dict) else None
        return sid if isinstance(sid, str) and 0 < len(sid) <= MAX_ID else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
