"""Two control-plane costs (``PYTHONPATH=. python benches/control_send_bench.py [REDIS_URL]``).

* ``email``: one email delivery (``send_email``: resolve, connect, EHLO, MAIL, RCPT, DATA,
  QUIT) to an aiosmtpd receiver on 127.0.0.1 — wall time per message, and the sender
  process's CPU per message (the receiver runs in a thread of this process, so its CPU is
  counted too: an upper bound).
* ``ratelimit``: ``ControlRateLimiter.take`` per management request, counted in memory
  and, with a Redis URL, shared through Redis (one pipelined INCR + EXPIRE).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

from redis.asyncio import Redis
from tests.support.smtp import SmtpReceiver

from tollhouse.control._ratelimit import ControlRateLimiter
from tollhouse.events.email import SmtpTarget, send_email
from tollhouse.events.ssrf import SSRFGuard
from tollhouse.events.types import INCIDENT_OPENED, Event

EMAILS = 200
TAKES = 5000


async def bench_email() -> None:
    with SmtpReceiver() as rx:
        target = SmtpTarget.from_config(
            {"to": ["a@example.com"], "smtp_host": "127.0.0.1", "smtp_port": rx.port}
        )
        guard = SSRFGuard(["127.0.0.1"])
        walls = []
        cpu0 = time.process_time()
        for _ in range(EMAILS):
            event = Event(INCIDENT_OPENED, {"test": True, "rule": "bench"}, team_id="ws")
            t0 = time.perf_counter()
            out = await send_email(target, event, guard=guard)
            walls.append(time.perf_counter() - t0)
            assert out.outcome == "delivered", out
        cpu = time.process_time() - cpu0
        rx.wait(EMAILS)
    walls.sort()
    print(
        f"email     {EMAILS} messages: wall median {statistics.median(walls) * 1e3:.2f} ms, "
        f"p95 {walls[int(0.95 * len(walls))] * 1e3:.2f} ms; "
        f"CPU {cpu / EMAILS * 1e3:.2f} ms per message (sender + receiver)"
    )


async def bench_take(label: str, limiter: ControlRateLimiter) -> None:
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(TAKES):
        await limiter.take(f"caller-{i % 50}")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        f"ratelimit {label:6} {TAKES} takes: {wall / TAKES * 1e6:.1f} µs wall, "
        f"{cpu / TAKES * 1e6:.1f} µs CPU per request"
    )


async def main() -> None:
    await bench_email()
    await bench_take("memory", ControlRateLimiter(10**9))
    if len(sys.argv) > 1:
        client = Redis.from_url(sys.argv[1])
        try:
            prefix = f"bench:{uuid.uuid4().hex}:"
            await bench_take("redis", ControlRateLimiter(10**9, redis=client, prefix=prefix))
        finally:
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
