import asyncio
from pathlib import Path

import orjson
import pytest
from tests.support.receiver import Receiver, Reply

from tollhouse.config import Secret
from tollhouse.errors import InvalidSignature
from tollhouse.events.config import WebhookEndpoint, parse_webhooks
from tollhouse.events.dispatcher import WebhookDispatcher, classify, parse_retry_after
from tollhouse.events.signing import verify
from tollhouse.events.types import Event

LOOPBACK = ["127.0.0.0/8"]
SECRET = "whsec_dGVzdC1zZWNyZXQtdmFsdWU="


def hook(url: str, **kw: object) -> WebhookEndpoint:
    return WebhookEndpoint(url=url, secret=Secret(SECRET), **kw)  # type: ignore[arg-type]


def alert(**data: object) -> Event:
    return Event(type="budget.alert", data={"percentUsed": 82.4, **data}, key_name="my-key")


def fast(endpoints: list[WebhookEndpoint], **kw: object) -> WebhookDispatcher:
    opts: dict[str, object] = {
        "allow_private": LOOPBACK,
        "base_delay": 0.01,
        "max_delay": 2.0,
        "timeout": 2.0,
    }
    opts.update(kw)
    return WebhookDispatcher(endpoints, **opts)  # type: ignore[arg-type]


async def test_delivers_a_signed_event_that_verifies() -> None:
    async with Receiver() as rx:
        d = fast([hook(rx.url)])
        await d.start()
        ev = alert()
        d.emit(ev)
        (req,) = await rx.wait_for(1)
        await d.stop(1.0)
    assert req.method == "POST" and req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["webhook-id"] == ev.id
    assert orjson.loads(req.body) == ev.payload()
    verify(SECRET, req.headers, req.body)
    with pytest.raises(InvalidSignature):
        verify(SECRET, req.headers, req.body.replace(b"82.4", b"12.4"))
    assert "dGVzdC1zZWNyZXQ" not in str(req.headers)
    assert (d.delivered, d.failed, d.retried, d.dropped, d.queue_depth) == (1, 0, 0, 0, 0)


async def test_event_filters_per_endpoint() -> None:
    async with Receiver() as rx:
        only_exceeded = hook(rx.url_for("/exceeded"), events=frozenset({"budget.exceeded"}))
        d = fast([hook(rx.url_for("/all")), only_exceeded])
        await d.start()
        d.emit(alert())
        d.emit(Event(type="budget.exceeded", data={}))
        await rx.wait_for(3)
        await d.stop(1.0)
    paths = sorted((r.path, orjson.loads(r.body)["event"]) for r in rx.requests)
    assert paths == [
        ("/all", "budget.alert"),
        ("/all", "budget.exceeded"),
        ("/exceeded", "budget.exceeded"),
    ]


async def test_retries_5xx_with_the_same_id_then_delivers() -> None:
    async with Receiver() as rx:
        rx.plan(500, 503, 200)
        d = fast([hook(rx.url)])
        await d.start()
        ev = alert()
        d.emit(ev)
        reqs = await rx.wait_for(3)
        await d.stop(2.0)
    assert {r.headers["webhook-id"] for r in reqs} == {ev.id}
    for r in reqs:
        verify(SECRET, r.headers, r.body)
    assert (d.delivered, d.retried, d.failed) == (1, 2, 0)


async def test_gives_up_after_max_attempts() -> None:
    async with Receiver(default=Reply(502)) as rx:
        d = fast([hook(rx.url)], max_attempts=3)
        await d.start()
        d.emit(alert())
        await rx.wait_for(3)
        await d.stop(2.0)
        assert len(rx.requests) == 3
    assert (d.delivered, d.retried, d.failed) == (0, 2, 1)


async def test_retry_after_is_honoured() -> None:
    async with Receiver() as rx:
        rx.plan(Reply(429, headers={"Retry-After": "1"}), 200)
        d = fast([hook(rx.url)], base_delay=0.001)
        await d.start()
        d.emit(alert())
        first, second = await rx.wait_for(2, timeout=5)
        await d.stop(1.0)
    assert second.at - first.at >= 0.95
    assert (d.delivered, d.retried) == (1, 1)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_no_retry_on_other_4xx(status: int) -> None:
    async with Receiver() as rx:
        rx.plan(status)
        d = fast([hook(rx.url)])
        await d.start()
        d.emit(alert())
        await rx.wait_for(1)
        await d.stop(1.0)
        await asyncio.sleep(0.05)
        assert len(rx.requests) == 1
    assert (d.delivered, d.retried, d.failed) == (0, 0, 1)


async def test_redirects_are_not_followed() -> None:
    async with Receiver() as rx:
        rx.plan(Reply(307, headers={"Location": rx.url_for("/elsewhere")}))
        d = fast([hook(rx.url)])
        await d.start()
        d.emit(alert())
        await rx.wait_for(1)
        await d.stop(1.0)
        await asyncio.sleep(0.05)
        assert [r.path for r in rx.requests] == ["/hook"]
    assert d.failed == 1


async def test_timeouts_are_retried() -> None:
    async with Receiver() as rx:
        rx.plan(Reply(200, delay=1.5), 200)
        d = fast([hook(rx.url)], timeout=0.5)
        await d.start()
        d.emit(alert())
        await rx.wait_for(2)
        await d.stop(2.0)
    assert (d.delivered, d.retried, d.failed) == (1, 1, 0)


async def test_connection_refused_is_retried_then_fails() -> None:
    async with Receiver() as rx:
        dead = rx.url  # the port is closed once the receiver stops
    d = fast([hook(dead)], max_attempts=3)
    await d.start()
    d.emit(alert())
    async with asyncio.timeout(5):
        while d.failed == 0:
            await asyncio.sleep(0.01)
    await d.stop(1.0)
    assert (d.delivered, d.retried, d.failed, d.blocked) == (0, 2, 1, 0)


async def test_ssrf_guard_refuses_internal_targets_without_sending() -> None:
    async with Receiver() as rx:
        targets = [
            rx.url,
            rx.url.replace("127.0.0.1", "localhost"),
            f"http://[::1]:{rx.port}/hook",
            "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data/",
        ]
        d = WebhookDispatcher([hook(u) for u in targets], base_delay=0.01)  # no allow_private
        await d.start()
        d.emit(alert())
        async with asyncio.timeout(5):
            while d.failed < len(targets):
                await asyncio.sleep(0.01)
        await d.stop(1.0)
        assert rx.requests == []
    assert (d.blocked, d.failed, d.retried, d.delivered) == (5, 5, 0, 0)


async def test_send_once_reports_the_outcome() -> None:
    async with Receiver() as rx:
        rx.plan(200, 500)
        d = fast([])
        ep = hook(rx.url)
        ok = await d.send_once(ep, alert())
        bad = await d.send_once(ep, alert())
        blocked = await WebhookDispatcher().send_once(ep, alert())
        await d.stop(0)
    assert (ok.outcome, ok.status) == ("delivered", 200)
    assert (bad.outcome, bad.status) == ("retry", 500)
    assert blocked.outcome == "blocked" and len(rx.requests) == 2


async def test_queue_overflow_is_counted_and_emit_never_blocks() -> None:
    async with Receiver() as rx:
        d = fast([hook(rx.url)], max_queue=5)
        for _ in range(8):
            d.emit(alert())
        assert (d.dropped, d.queue_depth) == (3, 5)
        await d.start()
        await d.stop(5.0)
        assert len(rx.requests) == 5
    assert (d.delivered, d.dropped, d.queue_depth) == (5, 3, 0)


async def test_stop_drains_the_queue() -> None:
    async with Receiver() as rx:
        d = fast([hook(rx.url)], workers=2)
        await d.start()
        events = [alert(n=i) for i in range(50)]
        for ev in events:
            d.emit(ev)
        await d.stop(5.0)
        got = {orjson.loads(r.body)["id"] for r in rx.requests}
    assert got == {e.id for e in events}
    assert (d.delivered, d.queue_depth, d.persisted, d.dropped) == (50, 0, 0, 0)
    d.emit(alert())
    assert d.dropped == 1


async def test_stop_persists_what_it_cannot_deliver_and_start_resends(tmp_path: Path) -> None:
    spool = tmp_path / "webhooks.spool"
    async with Receiver(default=Reply(200, delay=3.0)) as slow:
        rx_url = slow.url
        slow.plan(500)  # first event is answered 500 at once, then waits a 30 s retry timer
        ep = hook(rx_url)
        d = fast([ep], workers=1, base_delay=30.0, max_delay=30.0, spool_path=spool)
        await d.start()
        events = [alert(n=i) for i in range(4)]
        for ev in events:
            d.emit(ev)
        await slow.wait_for(2)  # 500 answered; second is now in flight (slow)
        await d.stop(0.2)
    assert d.delivered == 0 and d.persisted == 4 and d.dropped == 0
    assert spool.stat().st_mode & 0o777 == 0o600
    assert (
        b"dGVzdC1zZWNyZXQ" not in spool.read_bytes() and rx_url.encode() not in spool.read_bytes()
    )

    async with Receiver() as rx:
        moved = hook(rx.url)  # same URL → recognised; other endpoint's lines are skipped
        d2 = fast([moved], spool_path=spool)
        await d2.start()
        await d2.stop(5.0)
        assert rx.requests == []  # the endpoint is not the spooled one (new port)
    assert not spool.exists()

    # A restart that still has the endpoint delivers every spooled event, ids intact.
    async with Receiver() as rx:
        d3 = fast([hook(rx.url)], spool_path=spool)
        d3.emit(alert())
        await d3.stop(0)  # never started: everything is spooled
        d4 = fast([hook(rx.url)], spool_path=spool)
        await d4.start()
        await rx.wait_for(1)
        await d4.stop(2.0)
    assert d3.persisted == 1 and d4.delivered == 1


async def test_stop_without_spool_counts_the_rest_as_dropped() -> None:
    async with Receiver(default=Reply(200, delay=3.0)) as slow:
        d = fast([hook(slow.url)], workers=1)
        await d.start()
        for _ in range(3):
            d.emit(alert())
        await slow.wait_for(1)
        await d.stop(0.1)
    assert (d.delivered, d.dropped, d.persisted) == (0, 3, 0)


async def test_slack_targets_get_a_slack_body() -> None:
    async with Receiver() as rx:
        slack = WebhookEndpoint(url=rx.url_for("/services/T0/B0/x"), type="slack")
        d = fast([slack])
        await d.start()
        ev = Event(
            type="budget.exceeded",
            data={"currentSpend": 5.01, "dailyLimit": 5.0, "percentUsed": 100.2},
            key_name="my-key",
            team_id="org_abc123",
        )
        d.emit(ev)
        (req,) = await rx.wait_for(1)
        await d.stop(1.0)
    body = orjson.loads(req.body)
    assert set(body) == {"text", "blocks"}
    assert "Budget exceeded" in body["text"] and "my-key" in body["text"]
    assert "100.2%" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context"]
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert "*currentSpend*\n5.01" in fields
    assert ev.id in body["blocks"][2]["elements"][0]["text"]
    assert "webhook-signature" not in req.headers  # no secret configured


async def test_from_config() -> None:
    cfg = parse_webhooks(
        {
            "endpoints": [{"url": "https://h.example/x", "secret": "s"}],
            "allow_private": ["10.0.0.0/8"],
            "max_queue": 7,
            "max_attempts": 2,
            "timeout": 3,
        },
        env={},
    )
    d = WebhookDispatcher.from_config(cfg, base_delay=0.1)
    assert d.endpoints == cfg.endpoints
    assert (d.max_attempts, d.timeout, d.base_delay, d._queue.maxsize) == (2, 3.0, 0.1, 7)
    assert d.guard.address_allowed("x", "10.1.1.1")


def test_backoff_is_full_jitter_within_caps() -> None:
    d = WebhookDispatcher(base_delay=0.5, max_delay=60)
    for attempt in range(1, 12):
        cap = min(60, 0.5 * 2 ** (attempt - 1))
        samples = [d.backoff(attempt) for _ in range(200)]
        assert all(0 <= s <= cap for s in samples)
        assert max(samples) > cap * 0.5  # spread, not a constant
    assert d.backoff(1, retry_after=7) == 7
    assert d.backoff(1, retry_after=600) == 60


def test_classify_and_retry_after() -> None:
    assert classify(204, None).outcome == "delivered"
    assert classify(429, 3.0).retry_after == 3.0
    assert classify(500, None).outcome == "retry"
    assert classify(409, None).outcome == "failed"
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_logs_carry_no_secret_or_hook_token(caplog: pytest.LogCaptureFixture) -> None:
    token = "abcdefghijklmnopqrstuvwx"
    async with Receiver(default=Reply(500)) as rx:
        eps = [
            WebhookEndpoint(url=rx.url_for(f"/services/T0/B0/{token}"), type="slack"),
            hook(rx.url_for(f"/in?token={token}")),
            hook(f"http://user:{token}@10.0.0.1/x"),
        ]
        d = fast(eps, max_attempts=2, max_queue=3)
        with caplog.at_level("DEBUG", logger="tollhouse.events"):
            d.emit(alert())
            d.emit(alert())  # overflows the queue: logged too
            await d.start()
            await d.stop(2.0)
    assert d.failed == 3 and d.dropped == 3 and d.retried == 2
    assert "failed after 2 attempt(s)" in caplog.text and "queue full" in caplog.text
    assert token not in caplog.text and "dGVzdC1zZWNyZXQ" not in caplog.text


def test_error_classes() -> None:
    from tollhouse.errors import DestinationBlocked

    assert (InvalidSignature.status, InvalidSignature.code) == (401, "invalid_signature")
    assert (DestinationBlocked.status, DestinationBlocked.code) == (403, "destination_blocked")
    assert issubclass(DestinationBlocked, PermissionError)


async def test_an_unwritable_spool_counts_as_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    d = fast([hook("http://127.0.0.1:9/x")], spool_path=blocker / "spool")
    d.emit(alert())
    await d.stop(0)
    assert (d.persisted, d.dropped) == (0, 1)
