"""Prometheus instruments of the gateway and the ``/metrics`` route.

The request path pays a few dictionary look-ups and integer additions: ``observe_request``
and friends accumulate into plain Python objects of the worker process.  A background
task (``Metrics.flusher``, run by the app's lifespan) writes the worker's cumulative
snapshot to the directory ``serve`` prepared, and a scrape sums the snapshots of every
worker that ever ran (``_metrics_files``), so several Granian workers show as one
gateway: no per-worker duplicates, no resets when a worker restarts.  Without a
directory (one process, tests) a scrape renders the process's own numbers.

Label values are bounded: models and providers are the configured ones (anything else
is ``_other``), key names appear only when ``metrics.key_labels`` is on, and every
free-form label (error code, family, deployment, stage) stops taking new values at
``metrics.max_label_values``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tollhouse import __version__
from tollhouse._metrics_families import (
    FAMILIES,
    LATENCY_BUCKETS,
    OVERHEAD_BUCKETS,
    TTFT_BUCKETS,
    Totals,
    render,
)
from tollhouse._metrics_files import (
    ENV_DIR,
    WorkerFile,
    collect,
    prepare_directory,
    remove_directory,
)
from tollhouse.config import Config
from tollhouse.errors import ConfigError

log = logging.getLogger("tollhouse.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "_other"
BreakerState = Literal["closed", "half_open", "open"]
_BREAKER = {"closed": 0, "half_open": 1, "open": 2}
_NL, _NT, _NO = len(LATENCY_BUCKETS), len(TTFT_BUCKETS), len(OVERHEAD_BUCKETS)


@dataclass(frozen=True)
class MetricsSettings:
    """The ``metrics`` config section."""

    enabled: bool = True
    flush_interval: float = 1.0
    key_labels: bool = False
    max_label_values: int = 200


def parse_settings(section: Any) -> MetricsSettings:
    if section is None:
        return MetricsSettings()
    if not isinstance(section, dict):
        raise ConfigError("metrics: expected a mapping")
    allowed = ("enabled", "flush_interval", "key_labels", "max_label_values")
    for key in section:
        if key not in allowed:
            raise ConfigError(f"metrics.{key}: unknown key (expected one of: {', '.join(allowed)})")
    d = MetricsSettings()
    out: dict[str, Any] = {}
    for key in ("enabled", "key_labels"):
        value = section.get(key, getattr(d, key))
        if not isinstance(value, bool):
            raise ConfigError(f"metrics.{key}: expected true or false, got {value!r}")
        out[key] = value
    interval = section.get("flush_interval", d.flush_interval)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ConfigError(f"metrics.flush_interval: expected seconds > 0, got {interval!r}")
    cap = section.get("max_label_values", d.max_label_values)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ConfigError(f"metrics.max_label_values: expected an integer >= 1, got {cap!r}")
    return MetricsSettings(
        enabled=out["enabled"],
        flush_interval=float(interval),
        key_labels=out["key_labels"],
        max_label_values=cap,
    )


class _Series:
    """Everything counted for one (model, provider): histograms are bucket counts with
    the sum in the last slot."""

    __slots__ = (
        "requests",
        "total",
        "upstream",
        "ttft",
        "overhead",
        "tokens_in",
        "tokens_out",
        "cost",
        "hits",
        "misses",
    )

    def __init__(self) -> None:
        self.requests: dict[tuple[int, str], int] = {}
        self.total: list[float] = [0] * (_NL + 2)
        self.upstream: list[float] = [0] * (_NL + 2)
        self.ttft: list[float] = [0] * (_NT + 2)
        self.overhead: list[float] = [0] * (_NO + 2)
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost = 0
        self.hits = 0
        self.misses = 0


class _Stats(Protocol):
    def stats(self) -> dict[str, int]: ...


class _BreakerLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...


class _LimiterLike(Protocol):
    stats: dict[str, int]

    @property
    def degraded(self) -> bool: ...


class _StatsOf:
    """``stats()`` over an object that keeps its counts in a ``stats`` dict."""

    def __init__(self, obj: _LimiterLike) -> None:
        self.obj = obj

    def stats(self) -> dict[str, int]:
        return {**self.obj.stats, "degraded": int(self.obj.degraded)}


class Metrics:
    """The instruments of one worker process (``METRICS`` is the process's own)."""

    def __init__(
        self, settings: MetricsSettings | None = None, directory: str | Path | None = None
    ) -> None:
        self.settings = settings or MetricsSettings()
        self._file = WorkerFile(directory) if directory is not None else None
        self._models: frozenset[str] | None = None
        self._providers: frozenset[str] | None = None
        self._seen: dict[str, set[str]] = {}
        self._collectors: list[Callable[[], None]] = []
        self._sources: dict[str, _Stats] = {}
        self._breakers: Iterable[_BreakerLike] | None = None
        self.reset()

    @classmethod
    def from_env(cls) -> Metrics:
        return cls(directory=os.environ.get(ENV_DIR) or None)

    def reset(self) -> None:
        """Forget everything counted (tests); the configuration stays."""
        self._series: dict[tuple[str, str], _Series] = {}
        self._counters: dict[str, dict[tuple[str, ...], float]] = {}
        self._gauges: dict[str, dict[tuple[str, ...], tuple[float, float]]] = {}
        self._stages: dict[str, list[float]] = {}
        self._seen.clear()
        self._seen_counts: dict[tuple[str, str, tuple[str, ...]], int] = {}

    # -- configuration ------------------------------------------------------------------

    @property
    def directory(self) -> Path | None:
        return self._file.directory if self._file is not None else None

    def set_directory(self, directory: str | Path | None) -> None:
        if self._file is not None:
            self._file.release()
        self._file = WorkerFile(directory) if directory is not None else None

    def configure(self, config: Config) -> None:
        """Take the label vocabulary (models, providers) and settings from ``config``."""
        self.settings = parse_settings(config.section("metrics"))
        models = set(config.models)
        for m in config.models.values():
            models.update(m.aliases)
            models.update(d.model for d in m.deployments)
        self._models = frozenset(models)
        self._providers = frozenset(config.providers)

    def _bounded(self, label: str, value: str) -> str:
        seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) >= self.settings.max_label_values:
            return OTHER
        seen.add(value)
        return value

    def _series_for(self, model: str, provider: str) -> _Series:
        if self._models is not None and model and model not in self._models:
            model = OTHER
        elif self._models is None:
            model = self._bounded("model", model)
        if self._providers is not None and provider and provider not in self._providers:
            provider = OTHER
        elif self._providers is None:
            provider = self._bounded("provider", provider)
        series = self._series.get((model, provider))
        if series is None:
            series = self._series[(model, provider)] = _Series()
        return series

    def _key_name(self, name: str) -> str:
        return self._bounded("key", name) if self.settings.key_labels else ""

    # -- the request path -----------------------------------------------------------------

    def observe_request(
        self,
        model: str,
        provider: str,
        status: int,
        code: str = "",
        *,
        total_s: float,
        upstream_s: float | None = None,
        overhead_s: float | None = None,
        ttft_s: float | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_micros: int = 0,
        cache_hit: bool | None = None,
    ) -> None:
        """Count one answered request (call once, at the end of the pipeline).

        ``model`` is the public model name ('' when the request never named a valid one),
        ``provider`` the configured provider that answered ('' when none was called),
        ``code`` the error code of the answer ('' for success).  Durations are seconds;
        ``overhead_s`` defaults to ``total_s - upstream_s``.  ``cache_hit`` is None when
        the cache was not consulted.
        """
        s = self._series.get((model, provider))
        if s is None:
            s = self._series_for(model, provider)
        rk = (status, code)
        req = s.requests
        if rk in req:
            req[rk] += 1
        else:
            rk = (status, self._bounded("code", code))
            req[rk] = req.get(rk, 0) + 1
        h = s.total
        h[bisect_left(LATENCY_BUCKETS, total_s)] += 1
        h[-1] += total_s
        if upstream_s is not None:
            h = s.upstream
            h[bisect_left(LATENCY_BUCKETS, upstream_s)] += 1
            h[-1] += upstream_s
            if overhead_s is None:
                overhead_s = total_s - upstream_s
        if overhead_s is None:
            overhead_s = total_s
        h = s.overhead
        h[bisect_left(OVERHEAD_BUCKETS, overhead_s)] += 1
        h[-1] += overhead_s
        if ttft_s is not None:
            h = s.ttft
            h[bisect_left(TTFT_BUCKETS, ttft_s)] += 1
            h[-1] += ttft_s
        if tokens_in:
            s.tokens_in += tokens_in
        if tokens_out:
            s.tokens_out += tokens_out
        if cost_micros:
            s.cost += cost_micros
        if cache_hit is not None:
            if cache_hit:
                s.hits += 1
            else:
                s.misses += 1

    def _inc(self, name: str, labels: tuple[str, ...], n: float = 1) -> None:
        rows = self._counters.get(name)
        if rows is None:
            rows = self._counters[name] = {}
        rows[labels] = rows.get(labels, 0) + n

    def _set(self, name: str, labels: tuple[str, ...], value: float) -> None:
        rows = self._gauges.get(name)
        if rows is None:
            rows = self._gauges[name] = {}
        rows[labels] = (value, time.time())

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Time spent in one pipeline stage (auth, parse, policy, redact, reserve, ...)."""
        h = self._stages.get(stage)
        if h is None:
            h = self._stages.setdefault(self._bounded("stage", stage), [0] * (_NO + 2))
        h[bisect_left(OVERHEAD_BUCKETS, seconds)] += 1
        h[-1] += seconds

    def _scope_name(self, scope: str, name: str) -> str:
        """Key names only with key_labels; team/agent/feature/guardrail names (configured,
        so few) up to the label cap.  Never pass a key hash or a raw key."""
        return self._key_name(name) if scope == "key" else self._bounded(f"name:{scope}", name)

    def observe_rate_limited(self, scope: str, limit: str, name: str = "") -> None:
        """A request refused by a limit: ``scope`` key|team|agent|feature|guardrail,
        ``limit`` rpm|tpm|cost_budget|tokens_budget|..., ``name`` the scope's name."""
        labels = (self._bounded("scope", scope), self._bounded("limit", limit))
        name = self._scope_name(scope, name)
        self._inc("tollhouse_rate_limit_rejections_total", (*labels, name))

    def set_budget_remaining(self, scope: str, name: str, remaining_micros: int) -> None:
        """Budget left for a scope.  Per-key values are kept only with key_labels on."""
        if scope == "key" and not self.settings.key_labels:
            return
        labels = (self._bounded("scope", scope), self._scope_name(scope, name))
        self._set("tollhouse_budget_remaining_usd", labels, max(0, remaining_micros))

    def set_breaker_state(self, deployment: str, state: BreakerState) -> None:
        """``deployment`` as ``provider/model``."""
        self._set(
            "tollhouse_breaker_state", (self._bounded("deployment", deployment),), _BREAKER[state]
        )

    def observe_redactions(self, family: str, n: int = 1) -> None:
        if n:
            self._inc("tollhouse_redactions_total", (self._bounded("family", family),), n)

    def observe_policy_block(self, family: str) -> None:
        self._inc("tollhouse_policy_blocks_total", (self._bounded("family", family),))

    def set_backend_up(self, backend: str, up: bool) -> None:
        """``backend`` store|counters|cache: the outcome of its last call or check."""
        self._set("tollhouse_backend_up", (self._bounded("backend", backend),), 1 if up else 0)

    def add_collector(self, collector: Callable[[], None]) -> None:
        """Run ``collector`` before every snapshot (it reads state into gauges/counters)."""
        self._collectors.append(collector)

    def _track(self, source: str, obj: _Stats, read: Callable[[str, dict[str, int]], None]) -> None:
        """Read ``obj.stats()`` before every snapshot; tracking the same ``source`` again
        swaps the object (config reload) and its counts carry on from where they were."""
        if source not in self._sources:
            self.add_collector(lambda: self._read_source(source, read))
        self._sources[source] = obj

    def _read_source(self, source: str, read: Callable[[str, dict[str, int]], None]) -> None:
        obj = self._sources.get(source)
        if obj is not None:
            read(f"{source}:{id(obj)}", obj.stats())

    def _cumulative(self, ident: str, stat: int, family: str, labels: tuple[str, ...]) -> None:
        """Add what a cumulative per-object count grew by since the last read."""
        key = (ident, family, labels)
        before = self._seen_counts.get(key, 0)
        if stat > before:
            self._inc(family, labels, stat - before)
        self._seen_counts[key] = stat

    def track_webhooks(self, dispatcher: _Stats) -> None:
        """Report a ``WebhookDispatcher``'s outcomes and queue depth."""

        def read(ident: str, stats: dict[str, int]) -> None:
            for outcome in ("delivered", "failed", "retried", "dropped", "blocked"):
                family = "tollhouse_webhook_deliveries_total"
                self._cumulative(ident, int(stats.get(outcome, 0)), family, (outcome,))
            self._set("tollhouse_webhook_queue_depth", (), int(stats.get("queue_depth", 0)))

        self._track("webhooks", dispatcher, read)

    def track_alerts(self, evaluator: _Stats) -> None:
        """Report an ``AlertEvaluator``: rounds run, changes sent and races lost."""

        def read(ident: str, stats: dict[str, int]) -> None:
            self._cumulative(ident, int(stats.get("rounds", 0)), "tollhouse_alert_rounds_total", ())
            for event in ("fired", "resolved", "raced"):
                count = int(stats.get(event, 0))
                self._cumulative(ident, count, "tollhouse_alerts_total", (event,))

        self._track("alerts", evaluator, read)

    def track_spend_writer(self, writer: _Stats) -> None:
        """Report a ``SpendWriter``: rows written/dropped, failed batches, queue depth."""

        def read(ident: str, stats: dict[str, int]) -> None:
            for outcome in ("written", "dropped"):
                family = "tollhouse_spend_rows_total"
                self._cumulative(ident, int(stats.get(outcome, 0)), family, (outcome,))
            failures = int(stats.get("failures", 0))
            self._cumulative(ident, failures, "tollhouse_store_failures_total", ("spend_write",))
            self._set("tollhouse_spend_queue_depth", (), int(stats.get("queue_depth", 0)))

        self._track("spend", writer, read)

    def track_limiter(self, limiter: _LimiterLike) -> None:
        """Report the budgets/limits stage: requests admitted without the shared counters
        (fail_mode open) or refused for their absence (closed), waits for in-flight
        reservations, settlements lost while the counters were down."""

        def read(ident: str, stats: dict[str, int]) -> None:
            for mode in ("open", "closed"):
                stat = int(stats.get(f"fail_{mode}", 0))
                self._cumulative(ident, stat, "tollhouse_counters_fail_mode_total", (mode,))
            for name, family in (
                ("waits", "tollhouse_limit_waits_total"),
                ("pending_dropped", "tollhouse_settlements_dropped_total"),
            ):
                self._cumulative(ident, int(stats.get(name, 0)), family, ())
            self.set_backend_up("counters", not stats.get("degraded", 0))

        self._track("limits", _StatsOf(limiter), read)

    def track_breakers(self, breakers: Iterable[_BreakerLike]) -> None:
        """Report every deployment's circuit breaker (``routing.BreakerBoard``): its state,
        read before each snapshot; ``id`` is the deployment (``provider/model``)."""
        if self._breakers is None:
            self.add_collector(self._read_breakers)
        self._breakers = breakers

    def _read_breakers(self) -> None:
        for b in self._breakers or ():
            value = _BREAKER.get(b.state)
            if value is not None:
                self._set("tollhouse_breaker_state", (self._bounded("deployment", b.id),), value)

    def track_key_cache(self, cache: _Stats) -> None:
        """Report a ``KeyCache``: keys held and failed refreshes from the store."""

        def read(ident: str, stats: dict[str, int]) -> None:
            failures = int(stats.get("refresh_failures", 0))
            self._cumulative(ident, failures, "tollhouse_store_failures_total", ("key_refresh",))
            self._set("tollhouse_keys_cached", (), int(stats.get("keys", 0)))

        self._track("keys", cache, read)

    # -- snapshots, flushing, exposition --------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The worker's cumulative numbers in the snapshot shape of ``_metrics_families``."""
        for collector in self._collectors:
            collector()
        c: dict[str, list[Any]] = {}
        h: dict[str, list[Any]] = {}
        now = time.time()
        for (model, provider), s in self._series.items():
            ml, mpl = [model], [model, provider]
            for (status, code), n in s.requests.items():
                c.setdefault("tollhouse_requests_total", []).append(
                    [[model, provider, str(status), code], n]
                )
            for name, hist in (
                ("tollhouse_request_duration_seconds", s.total),
                ("tollhouse_upstream_duration_seconds", s.upstream),
                ("tollhouse_ttft_seconds", s.ttft),
                ("tollhouse_overhead_seconds", s.overhead),
            ):
                if sum(hist[:-1]):
                    h.setdefault(name, []).append([mpl, list(hist)])
            for direction, n in (("input", s.tokens_in), ("output", s.tokens_out)):
                if n:
                    c.setdefault("tollhouse_tokens_total", []).append([[*mpl, direction], n])
            if s.cost:
                c.setdefault("tollhouse_cost_usd_total", []).append([mpl, s.cost])
            for result, n in (("hit", s.hits), ("miss", s.misses)):
                if n:
                    c.setdefault("tollhouse_cache_lookups_total", []).append([[*ml, result], n])
        for name, rows in self._counters.items():
            c.setdefault(name, []).extend([list(k), v] for k, v in rows.items())
        for stage, hist in self._stages.items():
            h.setdefault("tollhouse_stage_duration_seconds", []).append([[stage], list(hist)])
        g: dict[str, list[Any]] = {
            name: [[list(k), v, ts] for k, (v, ts) in rows.items()]
            for name, rows in self._gauges.items()
        }
        g["tollhouse_workers"] = [[[], 1, now]]
        g["tollhouse_build_info"] = [[[__version__], 1, now]]
        return {"c": c, "h": h, "g": g}

    def flush(self) -> None:
        """Write this worker's snapshot to the shared directory (no-op without one)."""
        if self._file is not None:
            self._file.write(self.snapshot())

    def totals(self) -> Totals:
        """The numbers a scrape shows: all workers, or this process alone."""
        if self._file is None:
            t = Totals()
            t.add(self.snapshot(), alive=True)
            return t
        self.flush()
        return collect(self._file.directory)

    def render(self) -> bytes:
        return render(self.totals()).encode()

    async def _flush_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            try:
                self.flush()
            except Exception as exc:  # keep counting in memory; say so once per outage
                if not failing:
                    log.warning("metrics: cannot write the worker snapshot: %s", exc)
                failing = True
            else:
                failing = False

    @contextlib.asynccontextmanager
    async def flusher(self) -> AsyncIterator[None]:
        """Flush every ``flush_interval`` while the app runs, and once more at shutdown
        (use inside the app's lifespan)."""
        task = asyncio.create_task(self._flush_loop()) if self._file is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.flush()


METRICS = Metrics.from_env()
"""This process's instruments; the pipeline calls ``METRICS.observe_request(...)``."""


def prepare_multiprocess_dir(path: str | Path | None = None) -> Path:
    """For ``serve``: make the shared directory before Granian starts its workers
    (they find it in ``TOLLHOUSE_METRICS_DIR``) and point ``METRICS`` at it.  ``path``
    defaults to ``$TOLLHOUSE_METRICS_DIR``, else a fresh directory on /dev/shm."""
    directory = prepare_directory(path or os.environ.get(ENV_DIR) or None)
    METRICS.set_directory(directory)
    return directory


def cleanup_multiprocess_dir(directory: str | Path) -> None:
    """For ``serve`` at exit: remove the snapshots (the counters end with the server)."""
    METRICS.set_directory(None)
    remove_directory(directory)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: the whole gateway in the Prometheus text format."""
    metrics: Metrics = getattr(request.app.state, "metrics", METRICS)
    if not metrics.settings.enabled:
        return Response(status_code=404)
    return Response(metrics.render(), media_type=CONTENT_TYPE)


def metrics_route() -> Route:
    return Route("/metrics", metrics_endpoint, methods=["GET"])


__all__ = [
    "CONTENT_TYPE",
    "FAMILIES",
    "METRICS",
    "Metrics",
    "MetricsSettings",
    "cleanup_multiprocess_dir",
    "metrics_endpoint",
    "metrics_route",
    "parse_settings",
    "prepare_multiprocess_dir",
]
