"""Metric families of the gateway, snapshot merging and the Prometheus text format.

A *snapshot* is what one worker process has counted since it started, in a shape that
orjson can write and read back::

    {"c": {name: [[labels, value], ...]},            # counters (cumulative)
     "h": {name: [[labels, [bucket counts..., sum]], ...]},  # histograms (non-cumulative)
     "g": {name: [[labels, value, unix_time], ...]}}          # gauges

``merge`` adds snapshots of several workers: counters and histograms are summed over
every worker that ever ran (so a restart does not reset them), gauges are combined by
the family's mode over the workers still alive (``sum``, ``max``) or taken from the
newest write wherever it came from (``last``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["counter", "histogram", "gauge"]
GaugeMode = Literal["sum", "max", "last"]
LabelValues = tuple[str, ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    mode: GaugeMode = "sum"
    scale: float = 1.0  # exposition divides by this (integer micro-dollars -> USD)


def _fam(*families: Family) -> dict[str, Family]:
    return {f.name: f for f in families}


FAMILIES: dict[str, Family] = _fam(
    Family(
        "tollhouse_requests_total",
        "counter",
        "Requests answered, by model, provider, HTTP status and error code ('' on success).",
        ("model", "provider", "status", "code"),
    ),
    Family(
        "tollhouse_request_duration_seconds",
        "histogram",
        "Total time from the request's arrival to the last byte sent.",
        ("model", "provider"),
        LATENCY_BUCKETS,
    ),
    Family(
        "tollhouse_upstream_duration_seconds",
        "histogram",
        "Time spent waiting on the upstream provider.",
        ("model", "provider"),
        LATENCY_BUCKETS,
    ),
    Family(
        "tollhouse_ttft_seconds",
        "histogram",
        "Time to the first streamed token, as seen by the client (streams only).",
        ("model", "provider"),
        TTFT_BUCKETS,
    ),
    Family(
        "tollhouse_overhead_seconds",
        "histogram",
        "The gateway's own time per request: total minus upstream.",
        ("model", "provider"),
        OVERHEAD_BUCKETS,
    ),
    Family(
        "tollhouse_tokens_total",
        "counter",
        "Tokens billed, by direction (input, output).",
        ("model", "provider", "direction"),
    ),
    Family(
        "tollhouse_cost_usd_total",
        "counter",
        "Spend in USD (counted in integer micro-dollars).",
        ("model", "provider"),
        scale=1_000_000.0,
    ),
    Family(
        "tollhouse_cache_lookups_total",
        "counter",
        "Response-cache lookups, by result (hit, miss).",
        ("model", "result"),
    ),
    Family(
        "tollhouse_budget_remaining_usd",
        "gauge",
        "Budget left in the current period, per scope (newest value from any worker).",
        ("scope", "name"),
        mode="last",
        scale=1_000_000.0,
    ),
    Family(
        "tollhouse_rate_limit_rejections_total",
        "counter",
        "Requests refused by a limit, per scope and limit (rpm, tpm, budget, ...).",
        ("scope", "limit", "name"),
    ),
    Family(
        "tollhouse_breaker_state",
        "gauge",
        "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open (worst worker).",
        ("deployment",),
        mode="max",
    ),
    Family(
        "tollhouse_webhook_deliveries_total",
        "counter",
        "Webhook delivery outcomes (delivered, failed, retried, dropped, blocked).",
        ("outcome",),
    ),
    Family(
        "tollhouse_webhook_queue_depth",
        "gauge",
        "Webhook deliveries queued, waiting for a retry or in flight (all workers).",
        mode="sum",
    ),
    Family(
        "tollhouse_alert_rounds_total",
        "counter",
        "Alert evaluation rounds run (by whichever evaluator held the lease).",
    ),
    Family(
        "tollhouse_alerts_total",
        "counter",
        "Alert rule changes sent (fired, resolved) and changes another evaluator sent "
        "first (raced).",
        ("event",),
    ),
    Family(
        "tollhouse_spend_rows_total",
        "counter",
        "Spend rows handed to the background writer, by outcome (written, dropped).",
        ("outcome",),
    ),
    Family(
        "tollhouse_spend_queue_depth",
        "gauge",
        "Spend rows waiting for the background writer (all workers).",
        mode="sum",
    ),
    Family(
        "tollhouse_store_failures_total",
        "counter",
        "Failed store operations (spend_write batches, key_refresh polls).",
        ("operation",),
    ),
    Family(
        "tollhouse_keys_cached",
        "gauge",
        "Virtual keys held in the in-memory key cache (largest worker).",
        mode="max",
    ),
    Family(
        "tollhouse_counters_fail_mode_total",
        "counter",
        "Requests with a limit while the shared counters were down, by fail_mode applied "
        "(open: admitted on per-process counters, closed: refused with 503).",
        ("mode",),
    ),
    Family(
        "tollhouse_limit_waits_total",
        "counter",
        "Times a request waited for in-flight reservations to settle before its budget check.",
    ),
    Family(
        "tollhouse_settlements_dropped_total",
        "counter",
        "Settlements lost because the counters stayed down and the retry queue was full.",
    ),
    Family(
        "tollhouse_redactions_total",
        "counter",
        "Secrets and personal data redacted, by family.",
        ("family",),
    ),
    Family(
        "tollhouse_policy_blocks_total",
        "counter",
        "Requests blocked by a content policy, by family.",
        ("family",),
    ),
    Family(
        "tollhouse_stage_duration_seconds",
        "histogram",
        "Time spent in one stage of the request pipeline.",
        ("stage",),
        OVERHEAD_BUCKETS,
    ),
    Family(
        "tollhouse_backend_up",
        "gauge",
        "Whether a backend (store, counters) answered its last check: 1 up, 0 down.",
        ("backend",),
        mode="last",
    ),
    Family(
        "tollhouse_workers",
        "gauge",
        "Worker processes currently reporting metrics.",
        mode="sum",
    ),
    Family(
        "tollhouse_build_info",
        "gauge",
        "Build information; the value is always 1.",
        ("version",),
        mode="max",
    ),
)


# -- merging -------------------------------------------------------------------------------


class Totals:
    """Snapshots of several workers added together (see the module docstring)."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[LabelValues, float]] = {}
        self.histograms: dict[str, dict[LabelValues, list[float]]] = {}
        self.gauges: dict[str, dict[LabelValues, tuple[float, float]]] = {}

    def add(self, snap: dict[str, Any], *, alive: bool) -> None:
        for name, rows in snap.get("c", {}).items():
            dst = self.counters.setdefault(name, {})
            for labels, value in rows:
                key = tuple(labels)
                dst[key] = dst.get(key, 0) + value
        for name, rows in snap.get("h", {}).items():
            hdst = self.histograms.setdefault(name, {})
            for labels, counts in rows:
                key = tuple(labels)
                have = hdst.get(key)
                if have is None:
                    hdst[key] = list(counts)
                elif len(have) == len(counts):  # else the bucket layout changed: skip
                    for i, n in enumerate(counts):
                        have[i] += n
        for name, rows in snap.get("g", {}).items():
            fam = FAMILIES.get(name)
            mode: GaugeMode = fam.mode if fam is not None else "sum"
            if not alive and mode != "last":
                continue
            gdst = self.gauges.setdefault(name, {})
            for labels, value, ts in rows:
                key = tuple(labels)
                prev = gdst.get(key)
                if prev is None:
                    gdst[key] = (value, ts)
                elif mode == "sum":
                    gdst[key] = (prev[0] + value, max(prev[1], ts))
                elif mode == "max":
                    gdst[key] = (max(prev[0], value), max(prev[1], ts))
                elif ts >= prev[1]:
                    gdst[key] = (value, ts)

    def dead_part(self) -> dict[str, Any]:
        """This total as a snapshot of a dead worker (for compaction): no live gauges."""
        snap: dict[str, Any] = {
            "c": {n: [[list(k), v] for k, v in rows.items()] for n, rows in self.counters.items()},
            "h": {
                n: [[list(k), v] for k, v in rows.items()] for n, rows in self.histograms.items()
            },
            "g": {},
        }
        for name, grows in self.gauges.items():
            fam = FAMILIES.get(name)
            if fam is not None and fam.mode == "last":
                snap["g"][name] = [[list(k), v, ts] for k, (v, ts) in grows.items()]
        return snap


def merge(snapshots: Iterable[tuple[dict[str, Any], bool]]) -> Totals:
    totals = Totals()
    for snap, alive in snapshots:
        totals.add(snap, alive=alive)
    return totals


# -- the text format -------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=False)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _scaled(value: float, scale: float) -> float:
    return value / scale if scale != 1.0 else value


def render(totals: Totals) -> str:
    """Prometheus text exposition format 0.0.4 of every known family (in table order)."""
    out: list[str] = []
    for fam in FAMILIES.values():
        if fam.kind == "counter":
            crows = totals.counters.get(fam.name)
            if not crows:
                continue
            out.append(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} counter\n")
            for key in sorted(crows):
                value = _scaled(crows[key], fam.scale)
                out.append(f"{fam.name}{_labels(fam.labels, key)} {_num(value)}\n")
        elif fam.kind == "gauge":
            grows = totals.gauges.get(fam.name)
            if not grows:
                continue
            out.append(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} gauge\n")
            for key in sorted(grows):
                value = _scaled(grows[key][0], fam.scale)
                out.append(f"{fam.name}{_labels(fam.labels, key)} {_num(value)}\n")
        else:
            hrows = totals.histograms.get(fam.name)
            if not hrows:
                continue
            out.append(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} histogram\n")
            bounds = [_num(b) for b in fam.buckets] + ["+Inf"]
            for key in sorted(hrows):
                counts = hrows[key]
                if len(counts) != len(bounds) + 1:
                    continue
                cum = 0
                for bound, n in zip(bounds, counts, strict=False):
                    cum += int(n)
                    lab = _labels(fam.labels, key, f'le="{bound}"')
                    out.append(f"{fam.name}_bucket{lab} {cum}\n")
                lab = _labels(fam.labels, key)
                out.append(f"{fam.name}_sum{lab} {_num(float(counts[-1]))}\n")
                out.append(f"{fam.name}_count{lab} {cum}\n")
    return "".join(out)
