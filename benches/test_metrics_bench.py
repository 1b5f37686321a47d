"""What the request path pays for metrics (``make bench``; off in the test run)."""

from __future__ import annotations

from typing import Any

from tollhouse.metrics import Metrics


def test_observe_request_non_stream(benchmark: Any) -> None:
    m = Metrics()
    kw = {"total_s": 0.0123, "upstream_s": 0.0119, "tokens_in": 12, "tokens_out": 30}
    benchmark(m.observe_request, "gpt-4o-mini", "up", 200, "", cost_micros=27, **kw)


def test_observe_request_stream_with_cache(benchmark: Any) -> None:
    m = Metrics()
    benchmark(
        m.observe_request, "gpt-4o-mini", "up", 200, "",
        total_s=0.5, upstream_s=0.49, ttft_s=0.04, tokens_in=12, tokens_out=300,
        cost_micros=270, cache_hit=False,
    )  # fmt: skip


def test_snapshot_of_a_busy_worker(benchmark: Any) -> None:
    m = Metrics()
    for i in range(20):
        for status in (200, 429, 502):
            m.observe_request(f"model-{i}", "up", status, "", total_s=0.01, upstream_s=0.009)
    benchmark(m.snapshot)


def test_pipeline_stages_of_one_request(benchmark: Any) -> None:
    """The eight ``Exchange.stage`` marks a non-stream chat request makes (perf_counter +
    ``observe_stage`` each): the stage metrics' whole cost per request."""
    import tollhouse.app  # noqa: F401 - imports the pipeline without an import cycle
    from tollhouse.proxy.pipeline import Exchange

    names = ("auth", "parse", "security", "limits", "route", "upstream", "respond", "settle")

    def one_request() -> None:
        ex = Exchange()
        for name in names:
            ex.stage(name)

    benchmark(one_request)
