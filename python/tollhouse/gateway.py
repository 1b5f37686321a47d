"""The running gateway: config plus the long-lived parts every request uses.

Built once per worker process by ``Gateway.from_config``; ``start``/``stop`` run in the
app lifespan (inside the serving event loop).  Later stages hang their parts here
(counters, policies, redactor, router, metrics) so the pipeline reaches everything
through one object.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field

from tollhouse import native
from tollhouse.config import Config, ModelConfig
from tollhouse.control import _resources
from tollhouse.control._delivery_send import send as send_to_target
from tollhouse.control.audit_chain import audit_for
from tollhouse.control.incidents_book import IncidentBook, book_for
from tollhouse.counters import open_counters
from tollhouse.errors import TollhouseError
from tollhouse.events.alerts import MemoryOnceGate, OnceGate, RedisOnceGate
from tollhouse.events.breaker_incidents import BreakerIncidents
from tollhouse.events.config import parse_webhooks
from tollhouse.events.dispatcher import WebhookDispatcher
from tollhouse.events.evaluator import AlertEvaluator, incidents_hook, parse_alerts
from tollhouse.guard.guardrail_store import GuardrailCache, GuardrailStore
from tollhouse.guard.keys import KeyCache
from tollhouse.guard.limits import Limiter
from tollhouse.guard.limits_config import parse_limits
from tollhouse.guard.security import Security
from tollhouse.providers import Provider, build_providers
from tollhouse.routing.router import Router
from tollhouse.store import SqlStore, Store, open_store
from tollhouse.store.writer import SpendWriter

log = logging.getLogger("tollhouse")


@dataclass(eq=False)
class Gateway:
    config: Config
    store: Store
    keys: KeyCache
    spend: SpendWriter
    prices: native.PriceTable
    providers: dict[str, Provider]
    limits: Limiter
    guardrails: GuardrailCache
    events: WebhookDispatcher
    security: Security
    # public model names and aliases (the routing registry's own map)
    models: dict[str, ModelConfig] = field(init=False)
    max_body_bytes: int = 32 * 1024 * 1024
    started: bool = False
    router: Router = field(init=False)
    breaker_incidents: BreakerIncidents | None = field(init=False, default=None)
    alerts: AlertEvaluator | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.max_body_bytes = self.config.server.max_body_bytes
        self.router = self._router()
        self.models = self.router.registry.configs

    @property
    def incidents(self) -> IncidentBook | None:
        """The incident book (``open_or_join``); None without a SQL store."""
        return book_for(self.store) if isinstance(self.store, SqlStore) else None

    def _router(self) -> Router:
        """Registry, breakers and failover policies (routing/); a provider without its
        key is planned around, so other deployments still serve the model."""
        providers = self.providers
        return Router(
            self.config,
            usable=lambda name: name in providers and providers[name].has_key,
            emit=self.events.emit,
            prices=self.prices,
        )

    @classmethod
    def from_config(cls, config: Config) -> Gateway:
        store = open_store(config.store)
        events = WebhookDispatcher.from_config(parse_webhooks(config.section("webhooks")))
        counters = open_counters(config.counters)
        client = getattr(counters, "client", None)
        # Budget alerts fire once per window across every replica sharing the counters.
        gate: OnceGate = RedisOnceGate(client) if client is not None else MemoryOnceGate()
        providers = build_providers(config)
        guardrails = GuardrailCache(GuardrailStore(store))
        limits = Limiter(
            counters,
            config=parse_limits(config.section("limits")),
            fail_mode=config.fail_mode,
            guardrails=guardrails,
            emit=events.emit,
            gate=gate,
        )
        gw = cls(
            config=config,
            store=store,
            keys=KeyCache(store),
            spend=SpendWriter(store),
            prices=native.PriceTable(config.pricing),
            providers=providers,
            limits=limits,
            guardrails=guardrails,
            events=events,
            security=Security.from_config(config, counters, providers, events.guard),
        )
        if client is not None:  # breakers and failover policies shared by every worker
            gw.router.share(client, gate)
        alerts = parse_alerts(config.section("alerts"))
        if isinstance(store, SqlStore) and alerts.enabled:
            gw.alerts = AlertEvaluator(
                store,
                lambda target, event: send_to_target(gw, target, event),
                lambda wid, tid: _resources.one(store, wid, "deliveries", tid, "target"),
                config=alerts,
                on_transition=incidents_hook(book_for(store)),
            )
        return gw

    async def start(self) -> None:
        native.warm_up_tokenizers()
        await self.store.open()
        if isinstance(self.store, SqlStore):  # enforcement events go to the audit log
            self.events.listen(audit_for(self.store).record_event)
            book = book_for(self.store)
            book.emit = self.events.emit  # incident.opened goes out through the dispatcher
            self.breaker_incidents = BreakerIncidents(book, self.router)
            self.breaker_incidents.attach()
        await self.keys.start()
        await self.spend.start()
        await self.guardrails.start()
        await self.events.start()
        await self.limits.start()
        await self.router.start()
        try:
            await self.limits.restore(await self.store.all_keys(), self.store)
        except TollhouseError as exc:  # counters down at start: fail_mode governs
            log.warning("could not restore budget counters from the store: %s", exc.message)
        for provider in self.providers.values():
            await provider.start()
        await self.security.start(self.store)
        if self.alerts is not None:
            await self.alerts.start()
        # Everything built so far lives as long as the worker: keep it out of the cyclic
        # GC's generations so collections on the request path scan only request garbage.
        gc.collect()
        gc.freeze()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        if self.alerts is not None:
            await self.alerts.stop()
        await self.security.close()
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception as exc:  # closing must not stop the rest of shutdown
                log.warning("closing provider %s failed: %s", provider.name, exc)
        await self.router.stop()
        if self.breaker_incidents is not None:  # before the dispatcher and store stop
            await self.breaker_incidents.stop()
        await self.limits.stop()
        await self.events.stop()
        await self.guardrails.stop()
        await self.spend.stop()
        await self.keys.stop()
        if isinstance(self.store, SqlStore):
            await audit_for(self.store).stop()  # appends what is still queued
        await self.store.close()
