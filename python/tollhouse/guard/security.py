"""The security stages' long-lived state, built once per worker from the config.

``Security.from_config`` compiles the redactors and the policy matcher at load, so a bad
pattern or rule is a start-up ``ConfigError``, and hangs them on the gateway
(``gw.security``).  The per-request stage that uses them is ``proxy/security.py``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from tollhouse.config import Config, ModelConfig
from tollhouse.counters import Counters
from tollhouse.errors import ConfigError, ProviderError
from tollhouse.events.ssrf import SSRFGuard
from tollhouse.guard.audit import AskModel, AuditConfig, Auditor
from tollhouse.guard.policies import PolicySet, matcher_rule
from tollhouse.guard.redaction import RequestRedactor
from tollhouse.guard.sessions import SessionLimits, Sessions
from tollhouse.guard.snapshots import Snapshotter
from tollhouse.providers import Call, Provider
from tollhouse.store import SqlStore, Store

log = logging.getLogger("tollhouse.guard")
POLICY_REFRESH_S: Final = 2.0


@dataclass(eq=False)
class Security:
    redaction: RequestRedactor
    policies: PolicySet
    sessions: Sessions
    auditor: Auditor
    snapshots: Snapshotter
    _refresher: asyncio.Task[None] | None = None
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_config(
        cls,
        config: Config,
        counters: Counters,
        providers: dict[str, Provider],
        guard: SSRFGuard | None = None,
    ) -> Security:
        limits = SessionLimits.parse(config.section("sessions"))
        audit = AuditConfig.parse(config.section("audit"))
        ask = None
        if audit.model is not None:
            models = _models(config)
            if audit.model not in models:
                raise ConfigError(f"audit.model: {audit.model!r} is not a configured model")
            ask = model_caller(models, providers)
        return cls(
            redaction=RequestRedactor(config.section("redaction")),
            policies=PolicySet.from_config(config.section("policies")),
            sessions=Sessions(counters, limits, fail_mode=config.fail_mode),
            # with Redis counters, verdicts are kept there too: every replica finds them
            auditor=Auditor(audit, ask, getattr(counters, "client", None)),
            snapshots=Snapshotter(guard or SSRFGuard()),
        )

    async def refresh_policies(self, store: Store) -> None:
        """Load every workspace's policies from the store; the workspaces whose rules
        changed get a new matcher (compiled off the event loop: the engine releases the
        GIL while compiling)."""
        if not isinstance(store, SqlStore):
            return
        async with self._reloading:  # one reload at a time: the newest read wins
            rows = await store._fetch(
                "SELECT workspace_id, id, body FROM workspace_resources"
                " WHERE kind = 'policies' ORDER BY workspace_id, created_at, id"
            )
            rules: dict[str, list[dict[str, Any]]] = {}
            for workspace, rid, body in rows:
                rules.setdefault(workspace, []).append(matcher_rule(rid, orjson.loads(body)))
            if not rules and not self.policies.has_workspaces:
                return
            failed = await asyncio.to_thread(self.policies.replace_workspaces, rules)
        for workspace, error in failed.items():
            log.warning("workspace %s: its policies do not compile, kept: %s", workspace, error)

    async def start(self, store: Store, interval: float = POLICY_REFRESH_S) -> None:
        await self._refresh_once(store)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh(store, interval))

    async def _refresh_once(self, store: Store) -> None:
        try:
            await self.refresh_policies(store)
        except Exception as exc:  # keep the policies we have; the next round retries
            log.warning("reloading workspace policies failed: %s", exc)

    async def _refresh(self, store: Store, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._refresh_once(store)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        await self.auditor.drain()
        await self.snapshots.close()


def _models(config: Config) -> dict[str, ModelConfig]:
    models = dict(config.models)
    for m in config.models.values():
        for alias in m.aliases:
            models.setdefault(alias, m)
    return models


def model_caller(models: dict[str, ModelConfig], providers: dict[str, Provider]) -> AskModel:
    """Ask a configured model through the gateway's own providers (no key, no budget)."""

    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        deployment = models[model].deployments[0]
        provider = providers[deployment.provider]
        body: dict[str, Any] = {"model": deployment.model, "messages": messages}
        reply = await provider.chat(Call(body, None, deployment.model))
        return _answer_text(reply.data)

    return ask


def _answer_text(data: Any) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ProviderError("the audit model answered without a message") from None
    return content if isinstance(content, str) else ""
