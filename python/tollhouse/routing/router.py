"""The router: which deployments a request tries, in which order, and what each try taught.

``Router.plan`` turns the resolved model, the request's ``models`` fallback list, the
configured ``fallbacks`` and the ``provider`` preferences into an ordered list of
``Target`` deployments.  ``Router.record_*`` feed every try's outcome to the
deployment's breaker and to the failover policies (which announce ``provider.failover``).
The retry loop itself lives in ``routing.attempts`` (it needs the pipeline's types).

Config (``routing:`` section, all optional)::

    routing:
      retries: 2               # extra tries on the same deployment
      max_attempts: 6          # tries per request, all deployments
      backoff_base_ms: 100     # full-jitter exponential backoff
      backoff_max_ms: 2000
      retry_budget_ms: 10000   # total waiting a request may do
      max_retry_after_ms: 5000 # a longer Retry-After moves on to the next deployment
      failover_probe_ms: 5000  # a failed-over primary gets one probe this often
      breaker: {failures: 5, error_rate: 0.5, min_requests: 10, window_ms: 30000,
                cooldown_ms: 10000, ewma_alpha: 0.3}
      supported_parameters: {PROVIDER: [param, ...]}   # for require_parameters
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tollhouse import native
from tollhouse.config import Config
from tollhouse.errors import ConfigError, InvalidRequest, NoProviderKey, NotFound, Unavailable
from tollhouse.events.alerts import OnceGate
from tollhouse.events.types import PROVIDER_FAILOVER, Event
from tollhouse.routing.breaker import Breaker, BreakerBoard, BreakerConfig, State
from tollhouse.routing.failover import FailoverPolicies, FailoverPolicy
from tollhouse.routing.registry import (
    Registry,
    Target,
    order_targets,
    parse_preferences,
    request_parameters,
)
from tollhouse.routing.retry import RetryConfig

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from tollhouse.routing.shared import SharedRouting

log = logging.getLogger("tollhouse.routing")


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    retry: RetryConfig = field(default_factory=RetryConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    failover_probe_s: float = 5.0
    supported_parameters: dict[str, tuple[str, ...]] = field(default_factory=dict)


_TOP = (
    "retries",
    "max_attempts",
    "backoff_base_ms",
    "backoff_max_ms",
    "retry_budget_ms",
    "max_retry_after_ms",
    "failover_probe_ms",
    "breaker",
    "supported_parameters",
)
_BREAKER = ("failures", "error_rate", "min_requests", "window_ms", "cooldown_ms", "ewma_alpha")


def _num(data: Mapping[str, Any], key: str, where: str, default: float, *, lo: float = 0) -> float:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or v < lo:
        raise ConfigError(f"{where}.{key}: expected a number >= {lo:g}, got {v!r}")
    return float(v)


def _int(data: Mapping[str, Any], key: str, where: str, default: int, *, lo: int = 0) -> int:
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{where}.{key}: expected an integer >= {lo}, got {v!r}")
    return v


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for k in data:
        if k not in allowed:
            raise ConfigError(f"{where}.{k}: unknown key (expected one of: {', '.join(allowed)})")


def parse_routing(raw: Any) -> RoutingConfig:
    """The ``routing:`` config section (absent: the defaults)."""
    if raw is None:
        return RoutingConfig()
    if not isinstance(raw, dict):
        raise ConfigError("routing: expected a mapping")
    _check_keys(raw, _TOP, "routing")
    d = RetryConfig()
    retry = RetryConfig(
        retries=_int(raw, "retries", "routing", d.retries),
        max_attempts=_int(raw, "max_attempts", "routing", d.max_attempts, lo=1),
        backoff_base_s=_num(raw, "backoff_base_ms", "routing", d.backoff_base_s * 1000) / 1000,
        backoff_max_s=_num(raw, "backoff_max_ms", "routing", d.backoff_max_s * 1000) / 1000,
        budget_s=_num(raw, "retry_budget_ms", "routing", d.budget_s * 1000) / 1000,
        max_retry_after_s=_num(raw, "max_retry_after_ms", "routing", d.max_retry_after_s * 1000)
        / 1000,
    )
    b = raw.get("breaker")
    b = {} if b is None else b
    if not isinstance(b, dict):
        raise ConfigError("routing.breaker: expected a mapping")
    _check_keys(b, _BREAKER, "routing.breaker")
    bd = BreakerConfig()
    w = "routing.breaker"
    rate = _num(b, "error_rate", w, bd.error_rate)
    alpha = _num(b, "ewma_alpha", w, bd.ewma_alpha)
    if not 0 < rate <= 1 or not 0 < alpha <= 1:
        raise ConfigError(f"{w}: error_rate and ewma_alpha must be in (0, 1]")
    breaker = BreakerConfig(
        failures=_int(b, "failures", w, bd.failures, lo=1),
        error_rate=rate,
        min_requests=_int(b, "min_requests", w, bd.min_requests, lo=1),
        window_s=_num(b, "window_ms", w, bd.window_s * 1000, lo=1) / 1000,
        cooldown_s=_num(b, "cooldown_ms", w, bd.cooldown_s * 1000) / 1000,
        ewma_alpha=alpha,
    )
    sp = raw.get("supported_parameters")
    sp = {} if sp is None else sp
    if not isinstance(sp, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in sp.values()
    ):
        raise ConfigError("routing.supported_parameters: expected PROVIDER: [param, ...]")
    return RoutingConfig(
        retry=retry,
        breaker=breaker,
        failover_probe_s=_num(raw, "failover_probe_ms", "routing", 5000) / 1000,
        supported_parameters={str(k): tuple(v) for k, v in sp.items()},
    )


@contextmanager
def _redis_unavailable() -> Iterator[None]:
    """A shared router's Redis failing: the typed 503 (only a shared router gets here)."""
    from redis.exceptions import RedisError  # a shared router has Redis

    try:
        yield
    except (RedisError, OSError) as exc:
        raise Unavailable(f"routing state in Redis unreachable: {type(exc).__name__}") from None


class Router:
    """Registry, breakers and failover policies of one worker."""

    def __init__(
        self,
        config: Config,
        *,
        usable: Callable[[str], bool] | None = None,
        emit: Callable[[Event], None] | None = None,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        prices: native.PriceTable | None = None,
    ) -> None:
        self.settings = parse_routing(config.section("routing"))
        for name in self.settings.supported_parameters:
            if name not in config.providers:
                raise ConfigError(f"routing.supported_parameters.{name}: unknown provider")
        self.registry = Registry(
            config.models,
            config.providers,
            prices if prices is not None else native.PriceTable(config.pricing),
            self.settings.supported_parameters,
        )
        self.board = BreakerBoard(self.settings.breaker, clock=clock, on_change=self._changed)
        self.policies = FailoverPolicies(
            self.registry, probe_interval_s=self.settings.failover_probe_s, clock=clock
        )
        self.usable = usable or (lambda provider: True)
        self.emit = emit
        self.rng = rng
        # breaker transitions to publish to other processes (routing.shared drains it)
        self.transitions: list[tuple[str, str, float]] = []
        self.shared: SharedRouting | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.once: OnceGate | None = None  # one provider.failover per switch across workers
        # called on every transition this worker makes (incidents: events/breaker_incidents)
        self.on_breaker: Callable[[Breaker, State], None] | None = None

    # -- lifecycle and shared state ----------------------------------------------------

    def share(self, client: Redis, once: OnceGate | None = None) -> None:
        """Share breaker state and policy definitions through Redis (``counters`` Redis)."""
        from tollhouse.routing.shared import SharedRouting  # imports redis: Redis counters only

        self.shared = SharedRouting(client, self)
        self.once = once

    async def start(self) -> None:
        if self.shared is not None:
            await self.shared.start()

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.stop()

    async def refresh_policies(self) -> None:
        """Reload the shared policy definitions (admin reads and writes start here)."""
        if self.shared is None:
            return
        with _redis_unavailable():
            await self.shared.refresh_policies()

    async def save_policy(self, policy: FailoverPolicy) -> None:
        if self.shared is None:
            return
        try:
            with _redis_unavailable():
                await self.shared.save_policy(policy)
        except Unavailable:
            self.policies.discard(policy.id)
            raise

    async def drop_policy(self, policy_id: str) -> None:
        if self.shared is None:
            return
        with _redis_unavailable():
            await self.shared.drop_policy(policy_id)

    @property
    def retry(self) -> RetryConfig:
        return self.settings.retry

    # -- planning ------------------------------------------------------------------------

    def plan(
        self, model: str, body: Mapping[str, Any], allowed: Callable[[str], bool]
    ) -> list[Target]:
        """The deployments to try for ``model`` then each fallback model, in order."""
        prefs = parse_preferences(body.get("provider"))
        extra = body.get("models")
        if extra is not None and (
            not isinstance(extra, list) or not all(isinstance(m, str) and m for m in extra)
        ):
            raise InvalidRequest("models: expected an array of model names")
        names: list[str] = [model, *(extra or ())]
        config = self.registry.lookup(model)
        if config is not None:
            names.extend(config.fallbacks)
        # only ``require_parameters`` looks at them (``_eligible``)
        params = request_parameters(body) if prefs.require_parameters else set()
        seen_models: set[str] = set()
        seen: set[tuple[str, str]] = set()
        out: list[Target] = []
        keyless = False
        for name in names:
            cfg = self.registry.lookup(name)
            if cfg is None or cfg.name in seen_models or not allowed(name):
                continue
            seen_models.add(cfg.name)
            ordered = order_targets(
                self.registry.targets(name),
                prefs,
                params,
                healthy=lambda t: self.board.get(t.id).available(),
                latency=lambda t: self.board.get(t.id).latency_ms,
                throughput=lambda t: self.board.get(t.id).tokens_per_s,
                rng=self.rng,
            )
            if self.policies:
                ordered = self.policies.reorder(cfg.name, ordered)
            for t in ordered:
                if (t.model, t.id) in seen:
                    continue
                if not self.usable(t.provider):
                    keyless = True
                    continue
                seen.add((t.model, t.id))
                out.append(t)
        if not out:
            if keyless:
                raise NoProviderKey(f"no provider key configured for the providers of {model!r}")
            raise NotFound(
                f"no deployment of {model!r} (or its fallbacks) matches the provider "
                "preferences of this request"
            )
        return out

    # -- outcomes ------------------------------------------------------------------------

    def breaker(self, target: Target) -> Breaker:
        return self.board.get(target.id)

    def record_success(self, target: Target, latency_s: float | None, tokens: int = 0) -> None:
        b = self.board.get(target.id)
        b.success(latency_s, tokens)
        if self.policies:
            self._announce(self.policies.observe(target, b, True, latency_s))

    def record_failure(self, target: Target, reason: str) -> None:
        b = self.board.get(target.id)
        b.failure(reason)
        if self.policies:
            self._announce(self.policies.observe(target, b, False, None))

    def record_throughput(self, target: Target, tokens: int, seconds: float) -> None:
        """Completion tokens per second of a finished answer (``sort: throughput``)."""
        self.record_throughput_of(target.id, tokens, seconds)

    def record_throughput_of(self, deployment_id: str, tokens: int, seconds: float) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        b = self.board.get(deployment_id)
        tps = tokens / seconds
        a = b.config.ewma_alpha
        b.tokens_per_s = tps if b.tokens_per_s is None else a * tps + (1 - a) * b.tokens_per_s

    def _changed(self, breaker: Breaker, old: State) -> None:
        log.warning("deployment %s circuit %s -> %s", breaker.id, old, breaker.state)
        if breaker.state != "half_open" and self.shared is not None:
            self.transitions.append((breaker.id, breaker.state, time.time()))
            del self.transitions[:-1000]
        if self.on_breaker is not None:
            try:
                self.on_breaker(breaker, old)
            except Exception as exc:  # a listener must never break a request
                log.warning("breaker listener failed: %s", exc)

    def _announce(self, changes: list[tuple[FailoverPolicy, str, str]]) -> None:
        for policy, action, reason in changes:
            src, dst = (
                (policy.primary_endpoint, policy.fallback_endpoints[0])
                if action == "failover"
                else (policy.fallback_endpoints[0], policy.primary_endpoint)
            )
            log.warning(
                "failover policy %s (%s): %s %s -> %s (%s)",
                policy.id,
                policy.route_id,
                action,
                src,
                dst,
                reason,
            )
            if self.emit is None:
                continue
            event = Event(
                PROVIDER_FAILOVER,
                {
                    "action": action,
                    "policyId": policy.id,
                    "workspaceId": policy.workspace_id,
                    "routeId": policy.route_id,
                    "from": src,
                    "to": dst,
                    "reason": reason,
                },
                workspace_id=policy.workspace_id,
            )
            if self.once is None:
                self._send(event)
            else:  # every worker sees the switch; one of them announces it
                once = f"failover:{policy.id}:{action}:{int(time.time() // 60)}"
                task = asyncio.get_running_loop().create_task(self._send_once(once, event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _send(self, event: Event) -> None:
        if self.emit is None:
            return
        try:
            self.emit(event)
        except Exception as exc:  # webhooks must never break a request
            log.warning("provider.failover event not sent: %s", exc)

    async def _send_once(self, once: str, event: Event) -> None:
        assert self.once is not None  # noqa: S101 - set with the task
        try:
            first = await self.once.first(once)
        except Exception as exc:  # Redis down: announce from this worker
            log.warning("failover announcement gate unavailable: %s", exc)
            first = True
        if first:
            self._send(event)

    # -- health --------------------------------------------------------------------------

    def health(self) -> list[dict[str, Any]]:
        """Every deployment's breaker state, error rate and latency."""
        out = []
        for t in self.registry.all_targets():
            snap = self.board.get(t.id).snapshot()
            snap.update(
                {
                    "model": t.model,
                    "provider": t.provider,
                    "upstream_model": t.upstream_model,
                    "weight": t.weight,
                    "region": t.region,
                }
            )
            out.append(snap)
        return out
