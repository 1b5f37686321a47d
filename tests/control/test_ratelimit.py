"""``X-RateLimit-*`` on control-plane responses; 429 over the limit; the limit from the
config (``control.rate_limit``), shared through Redis by every worker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from tests.control._app import Gw
from tests.support.gateway import GatewayProcess, write_config
from tests.support.servers import free_port

from tollhouse import control
from tollhouse.control._ratelimit import ControlRateLimiter, ControlSettings, parse_control
from tollhouse.errors import ConfigError


async def test_headers_on_every_answer(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for path, headers in (("/v1/workspaces", admin), ("/v1/audit/logs", {}), ("/v1/keys", admin)):
        before = time.time()
        r = await client.get(path, headers=headers)
        assert r.headers["x-ratelimit-limit"] == "600"
        assert int(r.headers["x-ratelimit-remaining"]) < 600
        reset = int(r.headers["x-ratelimit-reset"])  # the window's end, Unix seconds
        assert reset % 60 == 0 and before < reset <= time.time() + 60


async def test_over_the_limit_is_429(gw: Gw, admin: dict[str, str]) -> None:
    clock = [120.5]
    limiter = ControlRateLimiter(per_minute=3, clock=lambda: clock[0])
    app = Starlette(routes=control.routes(gw, limiter=limiter))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        seen = [await c.get("/v1/workspaces", headers=admin) for _ in range(4)]
        assert [r.status_code for r in seen] == [200, 200, 200, 429]
        assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0", "0"]
        assert seen[3].json()["error"]["code"] == "rate_limited"
        # 120.5 s is in the window [120, 180): it resets at 180 (Unix seconds), 60 s on
        assert [r.headers["x-ratelimit-reset"] for r in seen] == ["180"] * 4
        assert seen[3].headers["retry-after"] == "60"
        # another caller has its own count; the next window starts afresh
        other = await c.get("/v1/workspaces", headers={"Authorization": "Bearer x"})
        assert other.status_code == 401 and other.headers["x-ratelimit-remaining"] == "2"
        clock[0] = 180.0
        assert (await c.get("/v1/workspaces", headers=admin)).status_code == 200


def test_config_section_is_validated_naming_the_key() -> None:
    assert parse_control(None) == ControlSettings(600, 60)
    assert parse_control({"rate_limit": {"requests": 5}}) == ControlSettings(5, 60)
    got = parse_control({"rate_limit": {"requests": 50, "window_seconds": 10}})
    assert got == ControlSettings(50, 10)
    for raw, key in (
        ({"rate_limit": {"requests": 0}}, "control.rate_limit.requests"),
        ({"rate_limit": {"requests": "9"}}, "control.rate_limit.requests"),
        ({"rate_limit": {"window_seconds": True}}, "control.rate_limit.window_seconds"),
        ({"rate_limit": {"window_seconds": 86_401}}, "control.rate_limit.window_seconds"),
        ({"rate_limit": {"per": 1}}, "control.rate_limit.per"),
        ({"rate_limit": 5}, "control.rate_limit"),
        ({"ratelimit": {}}, "control.ratelimit"),
        ([1], "control"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_control(raw)
        assert err.value.message.startswith(f"{key}:"), err.value.message


def test_serve_refuses_a_bad_section_at_start(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"control": {"rate_limit": {"window_seconds": 0}}})
    for command in ("check-config", "serve"):
        res = subprocess.run(
            [sys.executable, "-m", "tollhouse", command, "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 2, res
        assert "control.rate_limit.window_seconds: must be in 1..86400" in res.stderr


async def test_redis_shares_the_count_and_an_outage_falls_back(redis_url: str) -> None:
    clock = [1000.0]
    client = Redis.from_url(redis_url)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        a, b = (
            ControlRateLimiter(4, lambda: clock[0], window_seconds=30, redis=client, prefix=prefix)
            for _ in range(2)
        )
        seen = [await x.take("caller") for x in (a, b, a, b, a)]
        assert [s[0] for s in seen] == [True, True, True, True, False]
        assert [s[1] for s in seen] == [3, 2, 1, 0, 0]
        assert seen[0][2:] == (20, 1020)  # 1000 s is 10 s into the window [990, 1020)
        ttl = await client.ttl(f"{prefix}30:33:caller")
        assert 0 < ttl <= 31
        clock[0] = 1020.0  # the next window starts afresh
        assert await b.take("caller") == (True, 3, 30, 1050)
    finally:
        await client.aclose()
    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        lone = ControlRateLimiter(2, lambda: clock[0], redis=down)
        assert [(await lone.take("c"))[0] for _ in range(3)] == [True, True, False]
    finally:
        await down.aclose()


def test_limit_over_http_shared_by_two_workers(tmp_path: Path, redis_url: str) -> None:
    """``tollhouse serve --workers 2`` on Redis counters: 5 requests per window in all."""
    admin = "adm_" + uuid.uuid4().hex
    cfg = write_config(
        tmp_path,
        {
            "store": f"sqlite:///{tmp_path / 'gw.db'}",
            "counters": redis_url,
            "admin_key": "env:TOLLHOUSE_RL_ADMIN",
            "control": {"rate_limit": {"requests": 5, "window_seconds": 3600}},
        },
    )
    if 3600 - time.time() % 3600 < 30:  # too close to the window's end: wait for the next
        time.sleep(3600 - time.time() % 3600 + 0.5)
    with GatewayProcess(cfg, tmp_path, workers=2, env={"TOLLHOUSE_RL_ADMIN": admin}) as gw:
        answers = []
        for _ in range(8):  # a fresh connection each time: spread over both workers
            with httpx.Client(base_url=gw.base_url, timeout=10) as c:
                answers.append(
                    c.get(
                        "/v1/workspaces",
                        headers={"Authorization": f"Bearer {admin}", "Connection": "close"},
                    )
                )
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
    assert [r.headers["x-ratelimit-limit"] for r in answers] == ["5"] * 8
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == list("43210000")
    for r in answers[5:]:
        assert r.json()["error"]["code"] == "rate_limited"
        reset, retry_after = int(r.headers["x-ratelimit-reset"]), int(r.headers["retry-after"])
        assert reset % 3600 == 0 and 1 <= retry_after <= 3600
        assert abs(reset - time.time() - retry_after) <= 5  # the same moment, two ways
