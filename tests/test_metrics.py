"""Unit tests of the instruments, label bounding, merging and the text format."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from tests.support.prom import parse, sample

from tollhouse._metrics_families import FAMILIES, Totals, render
from tollhouse.cli import main
from tollhouse.config import parse_config
from tollhouse.errors import ConfigError
from tollhouse.metrics import (
    CONTENT_TYPE,
    OTHER,
    Metrics,
    MetricsSettings,
    metrics_route,
    parse_settings,
)

CONFIG = parse_config(
    {
        "providers": {
            "up": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"},
            "mock": {"kind": "mock"},
        },
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "up"}], "aliases": ["mini"]},
            "mock-1": {"deployments": [{"provider": "mock"}]},
        },
        "metrics": {"max_label_values": 3},
    },
    env={},
)


@pytest.fixture
def m() -> Metrics:
    metrics = Metrics()
    metrics.configure(CONFIG)
    return metrics


def scrape(m: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse(m.render().decode())


def test_request_counter_and_histograms(m: Metrics) -> None:
    m.observe_request("gpt-4o-mini", "up", 200, total_s=0.030, upstream_s=0.0296)
    m.observe_request("gpt-4o-mini", "up", 200, total_s=0.2, upstream_s=0.192, ttft_s=0.04)
    m.observe_request("gpt-4o-mini", "up", 502, "provider_error", total_s=0.01, upstream_s=0.0)
    s = scrape(m)
    lab = {"model": "gpt-4o-mini", "provider": "up"}
    assert sample(s, "tollhouse_requests_total", **lab, status="200", code="") == 2
    assert sample(s, "tollhouse_requests_total", **lab, status="502", code="provider_error") == 1
    total = "tollhouse_request_duration_seconds"
    assert sample(s, f"{total}_bucket", **lab, le="0.005") == 0
    assert sample(s, f"{total}_bucket", **lab, le="0.01") == 1  # le is inclusive
    assert sample(s, f"{total}_bucket", **lab, le="0.05") == 2
    assert sample(s, f"{total}_bucket", **lab, le="0.25") == 3
    assert sample(s, f"{total}_bucket", **lab, le="+Inf") == 3
    assert sample(s, f"{total}_count", **lab) == 3
    assert sample(s, f"{total}_sum", **lab) == pytest.approx(0.24)
    assert sample(s, "tollhouse_ttft_seconds_count", **lab) == 1
    assert sample(s, "tollhouse_ttft_seconds_bucket", **lab, le="0.025") == 0
    assert sample(s, "tollhouse_ttft_seconds_bucket", **lab, le="0.05") == 1
    over = "tollhouse_overhead_seconds"
    assert sample(s, f"{over}_sum", **lab) == pytest.approx(0.0004 + 0.008 + 0.01)
    assert sample(s, f"{over}_bucket", **lab, le="0.0005") == 1
    assert sample(s, f"{over}_bucket", **lab, le="0.01") == 3


def test_overhead_given_explicitly_and_without_upstream(m: Metrics) -> None:
    m.observe_request("mock-1", "mock", 200, total_s=1.0, upstream_s=0.9, overhead_s=0.0002)
    m.observe_request("", "", 401, "invalid_key", total_s=0.00009)
    s = scrape(m)
    assert (
        sample(
            s, "tollhouse_overhead_seconds_bucket", model="mock-1", provider="mock", le="0.00025"
        )
        == 1
    )
    assert sample(s, "tollhouse_overhead_seconds_sum", model="", provider="") == pytest.approx(
        0.00009
    )
    assert (
        "tollhouse_upstream_duration_seconds_count",
        frozenset({("model", ""), ("provider", "")}),
    ) not in s
    assert (
        sample(
            s, "tollhouse_requests_total", model="", provider="", status="401", code="invalid_key"
        )
        == 1
    )


def test_tokens_cost_in_usd_and_cache(m: Metrics) -> None:
    for _ in range(3):
        m.observe_request(
            "gpt-4o-mini",
            "up",
            200,
            total_s=0.1,
            upstream_s=0.09,
            tokens_in=120,
            tokens_out=7,
            cost_micros=27,
            cache_hit=False,
        )
    m.observe_request("gpt-4o-mini", "", 200, total_s=0.001, cache_hit=True)
    s = scrape(m)
    lab = {"model": "gpt-4o-mini", "provider": "up"}
    assert sample(s, "tollhouse_tokens_total", **lab, direction="input") == 360
    assert sample(s, "tollhouse_tokens_total", **lab, direction="output") == 21
    assert sample(s, "tollhouse_cost_usd_total", **lab) == pytest.approx(81e-6)
    assert sample(s, "tollhouse_cache_lookups_total", model="gpt-4o-mini", result="miss") == 3
    assert sample(s, "tollhouse_cache_lookups_total", model="gpt-4o-mini", result="hit") == 1


def test_unknown_models_and_providers_collapse(m: Metrics) -> None:
    for i in range(50):
        m.observe_request(f"attacker-{i}", f"prov-{i}", 404, "model_not_found", total_s=0.001)
    m.observe_request("mini", "up", 200, total_s=0.001)  # an alias is a known name
    s = scrape(m)
    assert (
        sample(
            s,
            "tollhouse_requests_total",
            model=OTHER,
            provider=OTHER,
            status="404",
            code="model_not_found",
        )
        == 50
    )
    assert (
        sample(s, "tollhouse_requests_total", model="mini", provider="up", status="200", code="")
        == 1
    )
    assert not any("attacker" in str(k) for k in s)


def test_free_labels_stop_at_the_cap(m: Metrics) -> None:
    for i in range(10):
        m.observe_request("mock-1", "mock", 400 + i, f"code_{i}", total_s=0.001)
        m.observe_redactions(f"family_{i}", 2)
    s = scrape(m)
    codes = {dict(k[1])["code"] for k in s if k[0] == "tollhouse_requests_total"}
    assert codes == {"code_0", "code_1", "code_2", OTHER}
    fams = {dict(k[1])["family"]: v for k, v in s.items() if k[0] == "tollhouse_redactions_total"}
    assert fams == {"family_0": 2, "family_1": 2, "family_2": 2, OTHER: 14}


def test_unconfigured_instance_bounds_models_too() -> None:
    m = Metrics(MetricsSettings(max_label_values=2))
    for i in range(5):
        m.observe_request(f"m{i}", "p", 200, total_s=0.001)
    models = {dict(k[1])["model"] for k in scrape(m) if k[0] == "tollhouse_requests_total"}
    assert models == {"m0", "m1", OTHER}


def test_key_names_only_when_configured() -> None:
    m = Metrics()
    m.observe_rate_limited("key", "rpm", "alice")
    m.set_budget_remaining("key", "alice", 5_000_000)
    m.set_budget_remaining("team", "research", 2_500_000)
    s = scrape(m)
    assert (
        sample(s, "tollhouse_rate_limit_rejections_total", scope="key", limit="rpm", name="") == 1
    )
    assert not any("alice" in str(k) for k in s)
    assert sample(s, "tollhouse_budget_remaining_usd", scope="team", name="research") == 2.5

    named = Metrics(MetricsSettings(key_labels=True))
    named.observe_rate_limited("key", "tpm", "alice")
    named.set_budget_remaining("key", "alice", 1_250_000)
    s = scrape(named)
    assert (
        sample(s, "tollhouse_rate_limit_rejections_total", scope="key", limit="tpm", name="alice")
        == 1
    )
    assert sample(s, "tollhouse_budget_remaining_usd", scope="key", name="alice") == 1.25


def test_breakers_policy_backends_and_stages(m: Metrics) -> None:
    m.set_breaker_state("up/gpt-4o-mini", "open")
    m.set_breaker_state("mock/mock-1", "closed")
    m.set_breaker_state("mock/mock-1", "half_open")
    m.observe_policy_block("jailbreak")
    m.observe_policy_block("jailbreak")
    m.set_backend_up("counters", False)
    m.observe_stage("auth", 0.00003)
    s = scrape(m)
    assert sample(s, "tollhouse_breaker_state", deployment="up/gpt-4o-mini") == 2
    assert sample(s, "tollhouse_breaker_state", deployment="mock/mock-1") == 1
    assert sample(s, "tollhouse_policy_blocks_total", family="jailbreak") == 2
    assert sample(s, "tollhouse_backend_up", backend="counters") == 0
    assert sample(s, "tollhouse_stage_duration_seconds_bucket", stage="auth", le="0.0001") == 1
    assert sample(s, "tollhouse_workers") == 1


class _Dispatcher:
    def __init__(self) -> None:
        self.numbers = {"delivered": 0, "failed": 0, "queue_depth": 0}

    def stats(self) -> dict[str, int]:
        return dict(self.numbers)


def test_webhook_counters_survive_a_new_dispatcher() -> None:
    m = Metrics()
    first = _Dispatcher()
    m.track_webhooks(first)
    first.numbers.update(delivered=5, failed=1, queue_depth=3)
    s = scrape(m)
    assert sample(s, "tollhouse_webhook_deliveries_total", outcome="delivered") == 5
    assert sample(s, "tollhouse_webhook_queue_depth") == 3
    second = _Dispatcher()  # a config reload builds a new one that counts from zero
    m.track_webhooks(second)
    second.numbers.update(delivered=2)
    s = scrape(m)
    assert sample(s, "tollhouse_webhook_deliveries_total", outcome="delivered") == 7
    assert sample(s, "tollhouse_webhook_deliveries_total", outcome="failed") == 1
    assert sample(s, "tollhouse_webhook_queue_depth") == 0


def test_merge_modes() -> None:
    def snap(value: float, ts: float) -> dict[str, object]:
        return {
            "c": {"tollhouse_policy_blocks_total": [[["x"], value]]},
            "h": {"tollhouse_stage_duration_seconds": [[["auth"], [1] + [0] * 11 + [0.5]]]},
            "g": {
                "tollhouse_webhook_queue_depth": [[[], value, ts]],
                "tollhouse_breaker_state": [[["d"], value, ts]],
                "tollhouse_backend_up": [[["store"], value, ts]],
            },
        }

    t = Totals()
    t.add(snap(2, 10.0), alive=True)
    t.add(snap(1, 30.0), alive=True)
    t.add(snap(7, 20.0), alive=False)  # dead: counters stay, sum/max gauges go
    assert t.counters["tollhouse_policy_blocks_total"][("x",)] == 10
    assert t.histograms["tollhouse_stage_duration_seconds"][("auth",)][0] == 3
    assert t.histograms["tollhouse_stage_duration_seconds"][("auth",)][-1] == 1.5
    assert t.gauges["tollhouse_webhook_queue_depth"][()][0] == 3
    assert t.gauges["tollhouse_breaker_state"][("d",)][0] == 2
    assert t.gauges["tollhouse_backend_up"][("store",)][0] == 1  # newest write wins
    dead = t.dead_part()
    assert set(dead["g"]) == {"tollhouse_backend_up"}


def test_label_values_are_escaped() -> None:
    t = Totals()
    t.add({"c": {"tollhouse_redactions_total": [[['a"b\\c\nd'], 1]]}}, alive=True)
    assert 'family="a\\"b\\\\c\\nd"' in render(t)


def test_every_family_is_documented() -> None:
    for fam in FAMILIES.values():
        assert fam.name.startswith("tollhouse_") and fam.help
        if fam.kind == "counter":
            assert fam.name.endswith("_total")
        if fam.kind == "histogram":
            assert list(fam.buckets) == sorted(fam.buckets)


def test_settings_are_validated() -> None:
    assert parse_settings(None) == MetricsSettings()
    assert parse_settings({"flush_interval": 2, "key_labels": True}).flush_interval == 2.0
    for bad in (
        {"flush_interval": 0},
        {"flush_interval": "1s"},
        {"key_labels": "yes"},
        {"max_label_values": 0},
        {"labels": 1},
        [1],
    ):
        with pytest.raises(ConfigError, match="metrics"):
            parse_settings(bad)


async def test_route_serves_the_text_format() -> None:
    m = Metrics()
    m.observe_request("mock-1", "mock", 200, total_s=0.01, upstream_s=0.009)
    app = Starlette(routes=[metrics_route()])
    app.state.metrics = m
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/metrics")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == CONTENT_TYPE
        s = parse(resp.text)
        assert (
            sample(
                s,
                "tollhouse_requests_total",
                model="mock-1",
                provider="mock",
                status="200",
                code="",
            )
            == 1
        )
        assert (await client.post("/metrics")).status_code == 405
        m.settings = MetricsSettings(enabled=False)
        assert (await client.get("/metrics")).status_code == 404


def test_check_config_rejects_a_bad_metrics_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("metrics: {flush_interval: -1}\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert "metrics.flush_interval" in capsys.readouterr().err
    path.write_text("metrics: {key_labels: true, flush_interval: 0.5}\n")
    assert main(["check-config", "--config", str(path)]) == 0


class _Source:
    def __init__(self, **numbers: int) -> None:
        self.numbers = numbers

    def stats(self) -> dict[str, int]:
        return dict(self.numbers)


def test_store_parts_are_reported() -> None:
    m = Metrics()
    writer = _Source(written=10, dropped=1, failures=2, queue_depth=4)
    keys = _Source(keys=3, version=7, refresh_failures=1)
    m.track_spend_writer(writer)
    m.track_key_cache(keys)
    s = scrape(m)
    assert sample(s, "tollhouse_spend_rows_total", outcome="written") == 10
    assert sample(s, "tollhouse_spend_rows_total", outcome="dropped") == 1
    assert sample(s, "tollhouse_store_failures_total", operation="spend_write") == 2
    assert sample(s, "tollhouse_store_failures_total", operation="key_refresh") == 1
    assert sample(s, "tollhouse_spend_queue_depth") == 4
    assert sample(s, "tollhouse_keys_cached") == 3
    writer.numbers.update(written=15)
    m.track_spend_writer(_Source(written=2))  # a rebuilt writer: counts carry on
    s = scrape(m)
    assert sample(s, "tollhouse_spend_rows_total", outcome="written") == 12


def test_alert_evaluator_is_reported() -> None:
    m = Metrics()
    evaluator = _Source(rounds=5, fired=2, resolved=1, raced=1)
    m.track_alerts(evaluator)
    s = scrape(m)
    assert sample(s, "tollhouse_alert_rounds_total") == 5
    assert sample(s, "tollhouse_alerts_total", event="fired") == 2
    assert sample(s, "tollhouse_alerts_total", event="resolved") == 1
    assert sample(s, "tollhouse_alerts_total", event="raced") == 1
    evaluator.numbers.update(rounds=9, fired=3)
    s = scrape(m)
    assert sample(s, "tollhouse_alert_rounds_total") == 9
    assert sample(s, "tollhouse_alerts_total", event="fired") == 3


class _Limiter:
    def __init__(self) -> None:
        self.stats = {"fail_open": 0, "fail_closed": 0, "waits": 0, "pending_dropped": 0}
        self.degraded = False


def test_limiter_fail_modes_and_counters_health() -> None:
    m = Metrics()
    lim = _Limiter()
    m.track_limiter(lim)
    s = scrape(m)
    assert sample(s, "tollhouse_backend_up", backend="counters") == 1
    lim.stats.update(fail_open=3, waits=2)
    lim.degraded = True
    s = scrape(m)
    assert sample(s, "tollhouse_counters_fail_mode_total", mode="open") == 3
    assert sample(s, "tollhouse_limit_waits_total") == 2
    assert sample(s, "tollhouse_backend_up", backend="counters") == 0


def test_breaker_board_is_read_before_each_snapshot() -> None:
    from tollhouse.routing.breaker import BreakerBoard, BreakerConfig

    t = [0.0]
    board = BreakerBoard(BreakerConfig(), clock=lambda: t[0])
    m = Metrics()
    m.track_breakers(board)
    board.get("up/gpt-4o-mini").success(0.1)
    b = board.get("mock/mock-1")
    for _ in range(50):
        b.failure("HTTP 503")
    s = scrape(m)
    assert sample(s, "tollhouse_breaker_state", deployment="up/gpt-4o-mini") == 0
    assert sample(s, "tollhouse_breaker_state", deployment="mock/mock-1") == 2
    b.force_close()
    assert sample(scrape(m), "tollhouse_breaker_state", deployment="mock/mock-1") == 0
