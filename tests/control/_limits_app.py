"""The control app of ``_app.py`` plus the limits stage: guardrails over the same store
and a ``Limiter`` on memory counters (with a settable clock)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.control._app import Gw, start_gw, stop_gw

from tollhouse.counters import MemoryCounters
from tollhouse.guard.guardrail_store import GuardrailCache, GuardrailStore
from tollhouse.guard.limits import Limiter
from tollhouse.guard.limits_config import LimitsConfig


@dataclass
class LimitsGw(Gw):
    guardrails: GuardrailCache = field(init=False)
    limits: Limiter = field(init=False)


async def start_limits_gw(url: str, config: LimitsConfig | None = None) -> LimitsGw:
    base = await start_gw(url)
    gw = LimitsGw(base.config, base.store, base.keys, base.spend)
    gw.guardrails = GuardrailCache(GuardrailStore(gw.store), refresh_interval=0.1)
    await gw.guardrails.start()
    gw.limits = Limiter(MemoryCounters(), config=config, guardrails=gw.guardrails)
    return gw


async def stop_limits_gw(gw: LimitsGw) -> None:
    await gw.guardrails.stop()
    await gw.limits.stop()
    await stop_gw(gw)
