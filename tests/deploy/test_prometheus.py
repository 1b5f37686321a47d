"""The deploy assets against a real Prometheus (Debian package ``prometheus``).

promtool checks the shipped config and rules and runs the rules' unit tests; then a
Prometheus on 127.0.0.1 scrapes a running ``tollhouse serve --workers 2`` (the shipped
config with only the target and intervals changed) and the test queries the scraped
series, the loaded alert rules and every expression of the Grafana dashboard through
the HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from tests.support.gateway import Stack
from tests.support.metrics_stack import two_worker_stack
from tests.support.servers import free_port, stop_group, wait_http

from tollhouse._metrics_families import FAMILIES

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
PROM_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "tollhouse.json"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (the CI script installs the Debian package)")
    return path


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("promtool"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROM_DIR,
    )


def test_promtool_checks_config_and_rules() -> None:
    for args in (
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts.test.yml"),
    ):
        out = _promtool(*args)
        assert out.returncode == 0, f"promtool {' '.join(args)}:\n{out.stdout}{out.stderr}"


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs
    return exprs


def test_dashboard_uses_only_known_families() -> None:
    known = set(FAMILIES) | {f"{n}_{s}" for n in FAMILIES for s in ("bucket", "sum", "count")}
    for expr in _dashboard_exprs():
        names = {w for w in _words(expr) if w.startswith("tollhouse_")}
        assert names and names <= known, expr


def _words(expr: str) -> list[str]:
    out, cur = [], ""
    for ch in expr:
        if ch.isalnum() or ch == "_":
            cur += ch
        else:
            out.append(cur)
            cur = ""
    return [*out, cur]


def test_compose_wires_every_part() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(compose["services"]) == {"gateway", "redis", "postgres", "prometheus", "grafana"}
    prom = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["gateway:4000"]
    for volume in (
        compose["services"]["grafana"]["volumes"] + compose["services"]["prometheus"]["volumes"]
    ):
        src = volume.split(":")[0]
        if src.startswith("./"):
            assert (DEPLOY / src).exists(), volume


# -- a live Prometheus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    with two_worker_stack(tmp_path_factory.mktemp("metrics-prom"), redis_url) as s:
        yield s


@pytest.fixture(scope="module")
def app_url(stack: Stack) -> str:
    return stack.gateway.base_url


@pytest.fixture(scope="module")
def prometheus(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("prometheus")
    config: dict[str, Any] = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROM_DIR / f) for f in config["rule_files"]]
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [app_url.split("//", 1)[1]]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = _promtool("check", "config", str(work / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    port = free_port()
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [
            _tool("prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/-/ready", proc, timeout=60)
        yield base
    finally:
        stop_group(proc)
        log.close()


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5)
    body = resp.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _until(prom: str, expr: str, want: float, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        result = _query(prom, expr)
        if result:
            seen = float(result[0]["value"][1])
            if seen == want:
                return seen
        time.sleep(0.5)
    pytest.fail(f"{expr} = {seen}, wanted {want} within {timeout} s")


def test_prometheus_scrapes_the_workers_as_one(stack: Stack, prometheus: str) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    cost = 0
    for _ in range(30):  # a fresh connection each, so both workers serve
        resp = httpx.post(
            f"{stack.url}/chat/completions", content=body, headers=stack.headers(), timeout=10
        )
        assert resp.status_code == 200
        cost += round(float(resp.headers["x-gate-cost"]) * 1_000_000)
    for _ in range(4):
        bad = stack.headers("gk_not_a_key")
        resp = httpx.post(f"{stack.url}/chat/completions", content=body, headers=bad, timeout=10)
        assert resp.status_code == 401
    text = httpx.get(f"{stack.gateway.base_url}/metrics", timeout=5).text
    lint = _promtool("check", "metrics", stdin=text)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    _until(prometheus, 'up{job="tollhouse"}', 1)
    sel = 'tollhouse_requests_total{model="gpt-4o-mini",provider="up",status="200"}'
    assert _until(prometheus, sel, 30) == 30
    assert _until(prometheus, "sum(tollhouse_workers)", 2) == 2
    assert _until(prometheus, 'tollhouse_requests_total{code="invalid_key"}', 4) == 4
    spent = _query(prometheus, 'sum(tollhouse_cost_usd_total{model="gpt-4o-mini"})')
    assert float(spent[0]["value"][1]) == pytest.approx(cost / 1e6, abs=1e-12)


def test_prometheus_loads_rules_and_dashboard_queries(prometheus: str) -> None:
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"TollhouseDown", "TollhouseHighErrorRate", "TollhouseBreakerOpen"} <= names
    for expr in _dashboard_exprs():
        grafana = (
            expr.replace("$__rate_interval", "1m")
            .replace('"$model"', '".*"')
            .replace('"$provider"', '".*"')
        )
        _query(prometheus, grafana)  # Prometheus parses and evaluates it
