"""The ``limits:`` config section: budgets and rate limits per team, agent and feature.

```yaml
limits:
  hold_seconds: 900        # an unsettled reservation (crashed worker) is released after this
  max_wait_seconds: 10     # wait this long for in-flight requests to settle before a 429
  alert_percent: 80        # budget.alert threshold
  teams:
    Data Science: {budget_usd: 100, period: monthly, rpm: 600, tpm: 1000000}
  agents:
    agent-123: {budget_usd: 5, period: daily}
  features:
    summarize: {budget_usd: 20, period: weekly, budget_tokens: 5000000}
```

Key budgets and limits live on the key itself (``limit``, ``limit_reset``, ``rpm``,
``tpm``); guardrails come from the control-plane API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tollhouse.errors import ConfigError
from tollhouse.guard.budgets import Budget, Period, Scope, parse_period
from tollhouse.guard.ratelimit import RateLimit

_TOP = ("hold_seconds", "max_wait_seconds", "alert_percent", "teams", "agents", "features")
_ENTRY = ("budget_usd", "budget_tokens", "budget_requests", "period", "rpm", "tpm")


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    """Ceilings for one team, agent or feature."""

    budget_micros: int | None = None
    budget_tokens: int | None = None
    budget_requests: int | None = None
    period: Period | None = None
    rpm: int | None = None
    tpm: int | None = None

    def budgets(self, scope: Scope, sid: str) -> list[Budget]:
        out = []
        p = self.period
        if self.budget_micros is not None:
            out.append(Budget(scope, sid, self.budget_micros, p, "cost"))
        if self.budget_tokens is not None:
            out.append(Budget(scope, sid, self.budget_tokens, p, "tokens"))
        if self.budget_requests is not None:
            out.append(Budget(scope, sid, self.budget_requests, p, "requests"))
        return out

    def rates(self, scope: str, sid: str) -> list[RateLimit]:
        out = []
        if self.rpm is not None:
            out.append(RateLimit(scope, sid, "requests", self.rpm))
        if self.tpm is not None:
            out.append(RateLimit(scope, sid, "tokens", self.tpm))
        return out


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    hold_ms: int = 900_000
    max_wait_ms: int = 10_000
    alert_bp: int = 8_000
    teams: dict[str, ScopeLimits] = field(default_factory=dict)
    agents: dict[str, ScopeLimits] = field(default_factory=dict)
    features: dict[str, ScopeLimits] = field(default_factory=dict)


def _int(value: Any, where: str, *, lo: int = 0, hi: int = 10**15) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}: expected an integer in {lo}..{hi}, got {value!r}")
    return value


def _number(value: Any, where: str, *, lo: float = 0.0, hi: float = 1e9) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{where}: expected a number in {lo:g}..{hi:g}, got {value!r}")
    return float(value)


def _entry(data: Any, where: str) -> ScopeLimits:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    for k in data:
        if k not in _ENTRY:
            raise ConfigError(f"{where}.{k}: unknown key (expected one of: {', '.join(_ENTRY)})")

    def opt_int(name: str, lo: int = 0) -> int | None:
        v = data.get(name)
        return None if v is None else _int(v, f"{where}.{name}", lo=lo)

    usd = data.get("budget_usd")
    return ScopeLimits(
        budget_micros=None if usd is None else round(_number(usd, f"{where}.budget_usd") * 1e6),
        budget_tokens=opt_int("budget_tokens"),
        budget_requests=opt_int("budget_requests"),
        period=parse_period(data.get("period"), f"{where}.period"),
        rpm=opt_int("rpm", 1),
        tpm=opt_int("tpm", 1),
    )


def parse_limits(raw: Any) -> LimitsConfig:
    if raw is None:
        return LimitsConfig()
    if not isinstance(raw, dict):
        raise ConfigError("limits: expected a mapping")
    for k in raw:
        if k not in _TOP:
            raise ConfigError(f"limits.{k}: unknown key (expected one of: {', '.join(_TOP)})")
    groups: dict[str, dict[str, ScopeLimits]] = {}
    for name in ("teams", "agents", "features"):
        section = raw.get(name)
        section = {} if section is None else section
        if not isinstance(section, dict):
            raise ConfigError(f"limits.{name}: expected a mapping of name -> limits")
        groups[name] = {str(k): _entry(v, f"limits.{name}.{k}") for k, v in section.items()}
    d = LimitsConfig()
    hold = raw.get("hold_seconds", d.hold_ms / 1000)
    wait = raw.get("max_wait_seconds", d.max_wait_ms / 1000)
    pct = raw.get("alert_percent", d.alert_bp / 100)
    return LimitsConfig(
        hold_ms=round(_number(hold, "limits.hold_seconds", lo=1, hi=86_400) * 1000),
        max_wait_ms=round(_number(wait, "limits.max_wait_seconds", hi=600) * 1000),
        alert_bp=round(_number(pct, "limits.alert_percent", lo=1, hi=99) * 100),
        **groups,
    )
