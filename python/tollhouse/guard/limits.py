"""The budgets-and-limits stage: reserve the worst case before the upstream call, settle
to the true usage after it.

``Limiter.admit`` collects every ceiling that applies to a request (the key's budget and
RPM/TPM, its team's, agent's and feature's from ``limits:``, and matching guardrails),
reserves the request's worst-case cost, tokens and one request against all of them in
one atomic counter operation, and answers with an ``Admission`` (or a typed 429/403/503).
``Limiter.settle`` replaces the reservation by the true usage; ``release`` settles to no
spend.  Settling also drives ``budget.alert`` / ``budget.exceeded`` (once per window).

A budget that is full only because of in-flight reservations does not refuse at once:
the request waits (up to ``max_wait``) for them to settle, so concurrency never causes
a 429 while real spend is still below the limit minus this request's worst case.

When the shared counters (Redis) are unreachable, ``fail_mode`` decides: ``closed``
answers 503 for requests that have a ceiling, ``open`` admits them against a
per-process fallback counter and counts it.  A background probe notices Redis coming
back; reservations made meanwhile settle where they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tollhouse.counters import (
    Charge,
    Counters,
    CountersUnavailable,
    Denied,
    Level,
    Reservation,
)
from tollhouse.counters.memory import MemoryCounters
from tollhouse.errors import BudgetExceeded, ModelNotAllowed, RateLimited, Unavailable
from tollhouse.events.alerts import MemoryOnceGate, OnceGate, OnceTracker
from tollhouse.events.types import BUDGET_EXCEEDED, Event, usd
from tollhouse.guard.budgets import Budget, Clock, Period, Window, window
from tollhouse.guard.guardrails import Guardrail, RequestScope
from tollhouse.guard.limits_config import LimitsConfig
from tollhouse.guard.ratelimit import RateLimit, headers
from tollhouse.metrics import METRICS
from tollhouse.store.base import KeyRecord, Store

log = logging.getLogger("tollhouse.limits")

FailMode = Literal["open", "closed"]
Header = tuple[bytes, bytes]
PROBE_INTERVAL = 0.5
MAX_PENDING = 10_000
MAX_CEILINGS = 10_000  # cached (key, team, agent, feature) ceilings; cleared when full


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request asks for: who it is and its worst case."""

    scope: RequestScope
    key: KeyRecord | None
    worst_micros: int
    prompt_tokens: int
    max_output_tokens: int
    routed_by: frozenset[str] = frozenset()  # guardrails that already rerouted it

    @property
    def worst_tokens(self) -> int:
        return self.prompt_tokens + self.max_output_tokens


@dataclass(slots=True)
class Admission:
    """A granted request (or one to reroute).  Pass it back to ``settle``/``release``."""

    reservation: Reservation | None = None
    backend: Counters | None = None
    budgets: list[tuple[Budget, Window]] = field(default_factory=list)
    rates: list[RateLimit] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list)
    reroute: str | None = None
    guardrail_id: str | None = None
    ask: Ask | None = None
    rails: tuple[Guardrail, ...] = ()  # the guardrails that apply (allow-lists for fallbacks)


def key_budgets(key: KeyRecord) -> list[Budget]:
    if key.limit_micros is None:
        return []
    return [Budget("key", key.hash, key.limit_micros, key.limit_reset, "cost", key.name)]


def key_rates(key: KeyRecord) -> list[RateLimit]:
    out = []
    if key.rpm is not None:
        out.append(RateLimit("key", key.hash, "requests", key.rpm))
    if key.tpm is not None:
        out.append(RateLimit("key", key.hash, "tokens", key.tpm))
    return out


class Limiter:
    def __init__(
        self,
        counters: Counters,
        *,
        config: LimitsConfig | None = None,
        fail_mode: FailMode = "closed",
        guardrails: Callable[[], Sequence[Guardrail]] = tuple,
        emit: Callable[[Event], None] | None = None,
        gate: OnceGate | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.counters = counters
        self.config = config or LimitsConfig()
        self.fail_mode: FailMode = fail_mode
        self._guardrails = guardrails
        self._clock = clock
        self._local = MemoryCounters()
        # One gate for both paths (settled spend crossing 80 %/100 %, and a refusal), so
        # each event fires once per scope and window across every replica sharing it.
        self._gate: OnceGate = gate or MemoryOnceGate()
        self._emit = emit
        self._tracker = OnceTracker(self._gate, alert_bp=self.config.alert_bp, emit=emit)
        self._down = False
        self._pending: list[tuple[Reservation, list[int], int]] = []
        self._probe: asyncio.Task[None] | None = None
        self.stats = {"fail_open": 0, "fail_closed": 0, "waits": 0, "pending_dropped": 0}
        self._ceilings: dict[object, tuple[tuple[Budget, ...], tuple[RateLimit, ...]]] = {}

    # -- lifecycle and health ---------------------------------------------------------

    async def start(self) -> None:
        if self.counters.shared_across_processes and self._probe is None:
            self._probe = asyncio.create_task(self._run_probe(), name="tollhouse-limits-probe")

    async def stop(self) -> None:
        task, self._probe = self._probe, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_pending()
        await self.counters.close()

    async def restore(self, keys: Sequence[KeyRecord], store: Store) -> int:
        """Seed each key budget's counter from the recorded spend of its current window,
        where the counter does not exist yet (a restart with memory counters, or an empty
        Redis).  Returns how many counters were seeded."""
        now = self._now_ms()
        periods: list[Period | None] = [None, "daily", "weekly", "monthly"]
        starts = [window(p, now).start_ms / 1000 for p in periods]
        seeded = await self._restore_teams(store, now)
        budgeted = [k for k in keys if k.limit_micros is not None and not k.disabled]
        if not budgeted:
            return seeded
        usage = await store.key_usage([k.hash for k in budgeted], starts)
        for k in budgeted:
            for b in key_budgets(k):
                charge, _ = b.charge(0, now)
                used = usage.get(k.hash, [0] * len(periods))[periods.index(b.period)]
                if used and await self.counters.seed(
                    charge.key, used, expire_at_ms=charge.expire_at_ms
                ):
                    seeded += 1
        return seeded

    async def _restore_teams(self, store: Store, now: int) -> int:
        """Team USD budgets from the spend rows' ``team`` column (SQL stores only; agent,
        feature and guardrail spend is not recorded per scope, so those start at zero)."""
        fetch = getattr(store, "_fetch", None)
        seeded = 0
        for team, limits in self.config.teams.items():
            for b in limits.budgets("team", team):
                if b.metric != "cost" or fetch is None:
                    continue
                charge, w = b.charge(0, now)
                rows = await fetch(
                    "SELECT COALESCE(SUM(cost_micros), 0) FROM spend "
                    "WHERE team = ? AND created_at >= ?",
                    (team, w.start_ms / 1000),
                )
                used = int(rows[0][0]) if rows else 0
                if used and await self.counters.seed(
                    charge.key, used, expire_at_ms=charge.expire_at_ms
                ):
                    seeded += 1
        return seeded

    def health(self) -> dict[str, object]:
        """For ``/readyz``: the counters backend, whether it answers, and the mode."""
        backend = "redis" if self.counters.shared_across_processes else "memory"
        mode = "normal" if not self._down else f"fail_{self.fail_mode}"
        return {"backend": backend, "ok": not self._down, "fail_mode": self.fail_mode, "mode": mode}

    @property
    def degraded(self) -> bool:
        return self._down

    def _mark_down(self, exc: CountersUnavailable) -> None:
        METRICS.set_backend_up("counters", False)
        if not self._down:
            log.error("counters unavailable (%s); fail_mode=%s", exc.message, self.fail_mode)
        self._down = True

    async def _run_probe(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                if self._down and await self.counters.ping():
                    log.warning("counters reachable again; normal enforcement resumes")
                    self._down = False
                    METRICS.set_backend_up("counters", True)
                if not self._down and self._pending:
                    await self._flush_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the probe must outlive any one failure
                log.warning("counters probe failed: %s", exc)

    async def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for i, (reservation, actuals, now_ms) in enumerate(pending):
            try:
                reservation.done = False
                await self.counters.settle(reservation, actuals, now_ms=now_ms)
            except CountersUnavailable:
                self._pending = pending[i:] + self._pending
                return

    # -- admit ------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def applicable(self, ask: Ask) -> tuple[list[Budget], list[RateLimit], list[Guardrail]]:
        s, key = ask.scope, ask.key
        # The key's and the configured scopes' ceilings are the same for every request
        # of one key, team, agent and feature: built once, kept (a key whose limits
        # change is a new cache entry).
        ident = (
            (key.hash, key.name, key.limit_micros, key.limit_reset, key.rpm, key.tpm)
            if key is not None
            else None,
            s.team,
            s.agent,
            s.feature,
        )
        fixed = self._ceilings.get(ident)
        if fixed is None:
            if len(self._ceilings) >= MAX_CEILINGS:
                self._ceilings.clear()
            fixed = self._ceilings[ident] = self._scope_ceilings(ask)
        rails = [g for g in self._guardrails() if g.applies(s)]
        if not rails:
            return list(fixed[0]), list(fixed[1]), rails
        budgets = list(fixed[0])
        for g in rails:
            budgets += g.budgets()
        return budgets, list(fixed[1]), rails

    def _scope_ceilings(self, ask: Ask) -> tuple[tuple[Budget, ...], tuple[RateLimit, ...]]:
        s, cfg = ask.scope, self.config
        budgets: list[Budget] = []
        rates: list[RateLimit] = []
        if ask.key is not None:
            budgets += key_budgets(ask.key)
            rates += key_rates(ask.key)
        for group, sid, scope in (
            (cfg.teams, s.team, "team"),
            (cfg.agents, s.agent, "agent"),
            (cfg.features, s.feature, "feature"),
        ):
            limits = group.get(sid) if sid is not None else None
            if limits is not None and sid is not None:
                budgets += limits.budgets(scope, sid)  # type: ignore[arg-type]
                rates += limits.rates(scope, sid)
        return tuple(budgets), tuple(rates)

    def wants(self, scope: RequestScope, key: KeyRecord | None) -> bool:
        """Whether any ceiling or guardrail applies (else skip token estimates)."""
        if key is not None and (
            key.limit_micros is not None or key.rpm is not None or key.tpm is not None
        ):
            return True
        cfg = self.config
        if (
            (scope.team is not None and scope.team in cfg.teams)
            or (scope.agent is not None and scope.agent in cfg.agents)
            or (scope.feature is not None and scope.feature in cfg.features)
        ):
            return True
        return any(g.applies(scope) for g in self._guardrails())

    def _check_allowed(self, rails: list[Guardrail], s: RequestScope) -> None:
        for g in rails:
            if s.model is not None and not g.model_allowed(s.model):
                raise ModelNotAllowed(f"guardrail {g.name!r} does not allow model {s.model!r}")
            if s.provider is not None and not g.provider_allowed(s.provider):
                raise ModelNotAllowed(
                    f"guardrail {g.name!r} does not allow provider {s.provider!r}"
                )

    async def admit(self, ask: Ask) -> Admission:
        budgets, rates, rails = self.applicable(ask)
        self._check_allowed(rails, ask.scope)
        if not budgets and not rates:
            return Admission(ask=ask, rails=tuple(rails))
        now = self._now_ms()
        charges: list[Charge] = []
        windows: list[tuple[Budget, Window]] = []
        for b in budgets:
            amount = {"cost": ask.worst_micros, "tokens": ask.worst_tokens, "requests": 1}
            charge, w = b.charge(amount[b.metric], now)
            charges.append(charge)
            windows.append((b, w))
        for r in rates:
            charges.append(r.charge(1 if r.kind == "requests" else ask.worst_tokens))
        by_id = {g.id: g for g in rails}
        deadline = time.monotonic() + self.config.max_wait_ms / 1000
        delay = 0.005
        while True:
            result, backend = await self._reserve(charges, now)
            if isinstance(result, Reservation):
                return self._admitted(ask, result, backend, windows, rates, rails)
            if result.index >= len(windows):  # a rate limit: refuse at once
                rate = rates[result.index - len(windows)]
                kind = "rpm" if rate.kind == "requests" else "tpm"
                METRICS.observe_rate_limited(rate.scope, kind, _name(rate, ask))
                raise self._rate_error(rate, result)
            budget, w = windows[result.index]
            rail = by_id.get(budget.id) if budget.scope == "guardrail" else None
            if rail is not None and rail.action == "route" and rail.id not in ask.routed_by:
                return Admission(ask=ask, reroute=rail.route_target, guardrail_id=rail.id)
            level = await self._level(backend, charges[result.index], now)
            fits = level is not None and level.used + charges[result.index].amount <= budget.limit
            if fits and time.monotonic() < deadline:
                self.stats["waits"] += 1
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
                delay = min(delay * 2, 0.1)
                now = self._now_ms()
                continue
            used = level.used if level is not None else result.level
            await self._refused(budget, w, used, ask)
            METRICS.observe_rate_limited(
                budget.scope, f"{budget.metric}_budget", _name(budget, ask)
            )
            raise self._budget_error(budget, w, rail, now)

    async def _reserve(
        self, charges: list[Charge], now: int
    ) -> tuple[Reservation | Denied, Counters]:
        if not self._down:
            try:
                hold = self.config.hold_ms
                return await self.counters.reserve(charges, now_ms=now, hold_ms=hold), self.counters
            except CountersUnavailable as exc:
                self._mark_down(exc)
        if self.fail_mode == "closed":
            self.stats["fail_closed"] += 1
            raise Unavailable("spend limits cannot be checked right now (counters unavailable)")
        self.stats["fail_open"] += 1
        local = await self._local.reserve(charges, now_ms=now, hold_ms=self.config.hold_ms)
        return local, self._local

    @property
    def clock(self) -> Clock:
        return self._clock

    async def read_levels(self, charges: Sequence[Charge], now: int) -> list[Level]:
        """Current levels (enforcement check, credits), following ``fail_mode``."""
        if not self._down:
            try:
                return await self.counters.levels(charges, now_ms=now)
            except CountersUnavailable as exc:
                self._mark_down(exc)
        if self.fail_mode == "closed":
            raise Unavailable("spend limits cannot be read right now (counters unavailable)")
        return await self._local.levels(charges, now_ms=now)

    async def _level(self, backend: Counters, charge: Charge, now: int) -> Level | None:
        try:
            (level,) = await backend.levels([charge], now_ms=now)
        except CountersUnavailable:
            return None
        return level

    def _admitted(
        self,
        ask: Ask,
        reservation: Reservation,
        backend: Counters,
        windows: list[tuple[Budget, Window]],
        rates: list[RateLimit],
        rails: list[Guardrail],
    ) -> Admission:
        adm = Admission(reservation, backend, windows, rates, ask=ask, rails=tuple(rails))
        shown: set[str] = set()
        for i, r in enumerate(rates):
            if r.kind in shown:  # the key's own limit comes first and is the one shown
                continue
            shown.add(r.kind)
            j = len(windows) + i
            adm.headers += headers(r.kind, r.limit, reservation.levels[j], reservation.reset_ms[j])
        return adm

    def _rate_error(self, rate: RateLimit, denied: Denied) -> RateLimited:
        hdrs = {
            f"x-ratelimit-limit-{rate.kind}": str(rate.limit),
            f"x-ratelimit-remaining-{rate.kind}": str(max(0, rate.limit - denied.level)),
        }
        retry = denied.retry_after_ms
        if retry is not None and retry >= 0:
            hdrs["Retry-After"] = str(max(1, -(-retry // 1000)))
            what = f"{rate.limit} {rate.kind} per minute"
            return RateLimited(f"rate limit reached for {rate.label}: {what}", headers=hdrs)
        return RateLimited(
            f"this request alone exceeds the {rate.kind}-per-minute limit of {rate.label}",
            headers=hdrs,
        )

    def _budget_error(
        self, budget: Budget, w: Window, rail: Guardrail | None, now: int
    ) -> RateLimited:
        left = w.seconds_left(now)
        hdrs = {} if left is None else {"Retry-After": str(left)}
        name = f"guardrail {rail.name!r}" if rail is not None else budget.label
        if budget.scope == "key":
            name = f"key {budget.name!r}" if budget.name else "this key"
        if rail is not None and rail.action == "throttle":
            return RateLimited(f"throttled by {name}", headers=hdrs)
        period = budget.period or "lifetime"
        return BudgetExceeded(f"{period} {budget.metric} budget of {name} exhausted", headers=hdrs)

    # -- settle -----------------------------------------------------------------------

    async def settle(self, adm: Admission, *, cost_micros: int, tokens: int) -> None:
        """Replace the reservation by the true usage (also after errors and aborts)."""
        r, backend = adm.reservation, adm.backend
        if r is None or backend is None or r.done:
            return
        amounts = {"cost": max(0, cost_micros), "tokens": max(0, tokens), "requests": 1}
        actuals = [amounts[b.metric] for b, _ in adm.budgets]
        actuals += [1 if rl.kind == "requests" else max(0, tokens) for rl in adm.rates]
        now = self._now_ms()
        try:
            used = await backend.settle(r, actuals, now_ms=now)
        except CountersUnavailable as exc:
            self._mark_down(exc)
            r.done = True
            if len(self._pending) < MAX_PENDING:
                self._pending.append((r, actuals, now))
            else:
                self.stats["pending_dropped"] += 1
                log.error("settle queue full; reservation %s left to expire", r.id)
            return
        for (budget, w), level in zip(adm.budgets, used, strict=False):
            await self._observe(budget, w, level, adm.ask)

    async def release(self, adm: Admission) -> None:
        """Nothing was spent (refused later in the pipeline, or failed before upstream)."""
        await self.settle(adm, cost_micros=0, tokens=0)

    async def _observe(self, budget: Budget, w: Window, used: int, ask: Ask | None) -> None:
        if budget.metric != "cost":
            return
        METRICS.set_budget_remaining(budget.scope, _name(budget, ask), budget.limit - used)
        team, key_name, workspace_id = _who(ask)
        try:
            await self._tracker.observe(
                budget.label,
                w.id,
                used,
                budget.limit,
                period=budget.period,
                team_id=team,
                key_name=key_name,
                workspace_id=workspace_id,
            )
        except Exception as exc:  # an alert must never fail the request
            log.warning("budget alert for %s failed: %s", budget.label, exc)

    async def _refused(self, budget: Budget, w: Window, used: int, ask: Ask) -> None:
        """A refusal is the budget being hit even when settled spend stays just under the
        limit (the next worst case no longer fits): ``budget.exceeded``, once."""
        await self._observe(budget, w, used, ask)
        if budget.metric != "cost" or used >= budget.limit:
            return  # below: not cost; at/over: observe() already fired it
        try:
            if not await self._gate.first(f"{BUDGET_EXCEEDED}|{budget.label}|{w.id}"):
                return
        except Exception as exc:
            log.warning("budget alert for %s failed: %s", budget.label, exc)
            return
        team, key_name, workspace_id = _who(ask)
        data: dict[str, object] = {
            "scope": budget.label,
            "window": w.id,
            "currentSpend": usd(used),
            "limit": usd(budget.limit),
            "percentUsed": round(used * 100 / budget.limit, 1) if budget.limit else 100.0,
            "refused": True,
        }
        if budget.period is not None:
            data["period"] = budget.period
        if budget.period == "daily":
            data["dailyLimit"] = usd(budget.limit)
        if self._emit is not None:
            self._emit(
                Event(
                    BUDGET_EXCEEDED,
                    data,
                    team_id=team,
                    key_name=key_name,
                    workspace_id=workspace_id,
                )
            )


def _name(limit: Budget | RateLimit, ask: Ask | None) -> str:
    """The metrics label of a limit's scope: the key's name (never its hash), else the
    team/agent/feature id or the guardrail's name."""
    if limit.scope == "key":
        return ask.key.name if ask is not None and ask.key is not None else ""
    return getattr(limit, "name", "") or limit.id


def _who(ask: Ask | None) -> tuple[str | None, str | None, str | None]:
    """The team, key name and key workspace a budget event names."""
    if ask is None:
        return None, None, None
    key = ask.key
    if key is None:
        return ask.scope.team, None, None
    return key.team or ask.scope.team, key.name, key.workspace_id
