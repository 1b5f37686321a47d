"""Breaker state and failover-policy definitions shared through Redis.

When ``counters`` is Redis, every worker and replica runs one ``SharedRouting`` task:
every ``interval`` seconds it pushes this worker's breaker transitions (``open`` /
``closed`` with a wall-clock timestamp) and pulls everyone's, applying a newer remote
transition (last writer wins), and it reloads the failover-policy definitions.  So a
deployment that one worker saw fail opens everywhere within ``interval``, and a probe
that closes it closes it everywhere.  The request path never awaits Redis: it reads the
in-memory breakers this task keeps in step.  Redis being down only stops the sharing
(logged once per outage); each worker's own breakers keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from tollhouse.routing.failover import FailoverPolicy
    from tollhouse.routing.router import Router

log = logging.getLogger("tollhouse.routing")
DEFAULT_PREFIX = "tollhouse:routing:"
_TTL_S = 24 * 3600


class SharedRouting:
    def __init__(
        self,
        client: Redis,
        router: Router,
        *,
        prefix: str = DEFAULT_PREFIX,
        interval: float = 0.25,
    ) -> None:
        self.client = client
        self.router = router
        self.prefix = prefix
        self.interval = interval
        self.applied: dict[str, float] = {}  # deployment id -> timestamp of its last state
        self.healthy = True
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _key(self, deployment_id: str) -> str:
        return f"{self.prefix}breaker:{deployment_id}"

    @property
    def _policies_key(self) -> str:
        return self.prefix + "policies"

    async def start(self) -> None:
        self._stopping = False
        with contextlib.suppress(RedisError, OSError):
            await self.sync()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            await self.push()

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
                if not self.healthy:
                    log.warning("routing state sharing through Redis resumed")
                self.healthy = True
            except (RedisError, OSError) as exc:
                if self.healthy:
                    log.warning("routing state sharing through Redis failed: %s", exc)
                self.healthy = False

    async def sync(self) -> None:
        await self.push()
        await self.pull()
        await self.refresh_policies()

    async def push(self) -> None:
        pending, self.router.transitions = self.router.transitions, []
        if not pending:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for deployment_id, state, ts in pending:
                    pipe.set(self._key(deployment_id), f"{state}:{ts:.6f}", ex=_TTL_S)
                    self.applied[deployment_id] = max(self.applied.get(deployment_id, 0.0), ts)
                await pipe.execute()
        except BaseException:
            self.router.transitions[:0] = pending  # try again next round
            raise

    async def pull(self) -> None:
        ids = sorted({t.id for t in self.router.registry.all_targets()})
        if not ids:
            return
        values = await self.client.mget([self._key(i) for i in ids])
        now_wall, now_mono = time.time(), self.router.board.clock()
        for deployment_id, raw in zip(ids, values, strict=True):
            if raw is None:
                continue
            try:
                state, ts_text = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(":")
                ts = float(ts_text)
            except ValueError:
                continue
            if ts <= self.applied.get(deployment_id, 0.0):
                continue
            self.applied[deployment_id] = ts
            breaker = self.router.board.get(deployment_id)
            if state == "open":
                breaker.force_open(now_mono - max(0.0, now_wall - ts))
            elif state == "closed":
                breaker.force_close()

    async def refresh_policies(self) -> None:
        raw = await self.client.hgetall(self._policies_key)
        defs: list[dict[str, Any]] = []
        for value in raw.values():
            try:
                item = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(item, dict):
                defs.append(item)
        self.router.policies.load(defs)

    async def save_policy(self, policy: FailoverPolicy) -> None:
        body = orjson.dumps(self.router.policies.export(policy))
        await self.client.hset(self._policies_key, policy.id, body)

    async def drop_policy(self, policy_id: str) -> None:
        await self.client.hdel(self._policies_key, policy_id)
