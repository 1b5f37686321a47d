"""The alert evaluator in process: rules and targets made through the control API over a
real store (SQLite and PostgreSQL), spend rows in the store, deliveries to a real HTTP receiver on
127.0.0.1 through the real dispatcher; the clock is the test's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.control._app import ADMIN, EventsGw, client_for, events_gw
from tests.support.receiver import Receiver, Reply

from tollhouse.control import _resources
from tollhouse.control._delivery_send import send
from tollhouse.control.incidents_book import book_for
from tollhouse.errors import ConfigError
from tollhouse.events.evaluator import (
    AlertEvaluator,
    AlertsConfig,
    Transition,
    incidents_hook,
    parse_alerts,
)
from tollhouse.events.signing import verify
from tollhouse.store.base import KeyRecord, SpendRow

T0 = 1_800_000_000.0
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Rig:
    gw: EventsGw
    client: httpx.AsyncClient
    rx: Receiver
    clock: list[float]
    rows: int = 0

    def evaluator(self, **kw: Any) -> AlertEvaluator:
        store = self.gw.store
        kw.setdefault("clock", lambda: self.clock[0])
        return AlertEvaluator(
            store,
            lambda target, event: send(self.gw, target, event),
            lambda wid, tid: _resources.one(store, wid, "deliveries", tid, "target"),
            **kw,
        )

    async def traffic(self, n: int, status: int = 200, latency_ms: float = 50.0) -> None:
        rows = []
        for _ in range(n):
            self.rows += 1
            rows.append(
                SpendRow(
                    f"gen-{self.rows}",
                    "k",
                    "m",
                    "p",
                    "m",
                    self.clock[0] - 1,
                    status=status,
                    latency_ms=latency_ms,
                    cost_micros=1000,
                )
            )
        await self.gw.store.insert_spend(rows)

    async def post(self, path: str, body: dict[str, Any]) -> str:
        r = await self.client.post(f"/v1/workspaces/default/{path}", json=body, headers=AUTH)
        assert r.status_code == 201, r.text
        rid: str = r.json()["data"]["id"]
        return rid

    async def rule(
        self, name: str, condition: dict[str, Any], targets: list[str], **extra: Any
    ) -> str:
        body = {"name": name, "condition": condition, "delivery_targets": targets, **extra}
        return await self.post("alert-rules", body)

    async def targets(self) -> tuple[str, str]:
        hook = await self.post(
            "deliveries",
            {"name": "hook", "type": "webhook", "config": {"url": self.rx.url, "secret": "whsec"}},
        )
        slack = await self.post(
            "deliveries",
            {
                "name": "slack",
                "type": "slack",
                "config": {"webhook_url": self.rx.url_for("/slack")},
            },
        )
        return hook, slack


@pytest.fixture(params=["sqlite", "postgres"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/alerts.db"
    else:
        url = request.getfixturevalue("postgres_url")
    async with events_gw(url) as gw, client_for(gw) as c, Receiver() as rx:
        yield Rig(gw, c, rx, [T0])


def bodies(rx: Receiver, path: str = "/hook") -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in rx.requests if r.path == path]


async def test_fires_once_stays_quiet_while_firing_and_resolves(rig: Rig) -> None:
    hook, slack = await rig.targets()
    rid = await rig.rule(
        "Errors",
        {"metric": "error_rate", "threshold": 0.5, "window_seconds": 60},
        [hook, slack],
        severity="critical",
    )
    ev = rig.evaluator(on_transition=incidents_hook(book_for(rig.gw.store)))
    await rig.traffic(5, 200)
    assert await ev.run_once() == []  # healthy: nothing
    await rig.traffic(5, 502)  # 5 of 10 failed: at the threshold
    fired = await ev.run_once()
    assert [t.event.type for t in fired] == ["alert.fired"]
    assert all(r["delivered"] for r in fired[0].results)
    await rig.rx.wait_for(2)
    (msg,) = bodies(rig.rx)
    assert msg["event"] == "alert.fired" and msg["teamId"] == "default"
    data = msg["data"]
    assert (data["ruleId"], data["rule"], data["severity"]) == (rid, "Errors", "critical")
    assert (data["metric"], data["value"], data["threshold"]) == ("error_rate", 0.5, 0.5)
    assert (data["requests"], data["windowSeconds"], data["status"]) == (10, 60, "firing")
    hook_req = next(r for r in rig.rx.requests if r.path == "/hook")
    verify("whsec", hook_req.headers, hook_req.body)  # signed with the target's secret
    assert hook_req.headers["webhook-id"] == msg["id"]
    (slack_msg,) = bodies(rig.rx, "/slack")
    assert "event" not in slack_msg and slack_msg["text"].startswith(":rotating_light: Alert")
    assert "Errors" in slack_msg["text"] and slack_msg["blocks"][0]["type"] == "section"

    for step in range(4):  # still failing: no second message
        rig.clock[0] += 5
        await rig.traffic(2, 500)
        assert await ev.run_once() == [], step
    assert len(rig.rx.requests) == 2

    rig.clock[0] += 61  # the failures leave the window; healthy traffic only
    await rig.traffic(20, 200)
    resolved = await ev.run_once()
    assert [t.event.type for t in resolved] == ["alert.resolved"]
    await rig.rx.wait_for(4)
    done = bodies(rig.rx)[-1]
    assert done["event"] == "alert.resolved" and done["data"]["status"] == "resolved"
    assert done["data"]["firedEventId"] == msg["id"] and done["data"]["value"] == 0.0
    assert ":white_check_mark:" in bodies(rig.rx, "/slack")[-1]["text"]
    assert await ev.run_once() == [] and len(rig.rx.requests) == 4

    rig.clock[0] += 5  # failing again: a new firing
    await rig.traffic(30, 503)
    (again,) = await ev.run_once()
    assert again.event.type == "alert.fired"

    # One incident for the rule: opened by the first firing, the rest on its timeline.
    r = await rig.client.get("/v1/workspaces/default/incidents", headers=AUTH)
    (incident,) = r.json()["data"]
    assert incident["source"] == {"kind": "alert_rule", "ref": rid}
    assert incident["severity"] == "critical" and incident["status"] == "open"
    assert incident["title"].startswith("Errors: error_rate 0.5 >= 0.5 over 60 s")
    r = await rig.client.get(f"/v1/workspaces/default/incidents/{incident['id']}", headers=AUTH)
    timeline = [(e["kind"], e["data"]["event"]["id"]) for e in r.json()["data"]["timeline"]]
    assert timeline == [
        ("opened", msg["id"]),
        ("alert.resolved", done["id"]),
        ("joined", again.event.id),
    ]


async def test_a_rules_test_call_sends_the_alert_it_would_fire(rig: Rig) -> None:
    hook, _ = await rig.targets()
    rid = await rig.rule(
        "High Latency",
        {"metric": "latency", "threshold_ms": 3000, "window_seconds": 300},
        [hook],
        severity="high",
    )
    r = await rig.client.post(f"/v1/workspaces/default/alert-rules/{rid}/test", headers=AUTH)
    assert r.status_code == 200 and r.json()["data"]["results"][0]["delivered"] is True
    (msg,) = bodies(await rig.rx.wait_for(1) and rig.rx)
    assert msg["event"] == "alert.fired" and msg["data"]["test"] is True
    assert msg["data"]["summary"] == "latency >= 3000 ms over 300 s"
    assert (msg["data"]["ruleId"], msg["data"]["value"], msg["data"]["unit"]) == (rid, None, "ms")
    assert await rig.gw.store._fetch("SELECT * FROM alert_states") == []  # no state change


async def test_latency_p95_and_no_traffic(rig: Rig) -> None:
    hook, _ = await rig.targets()
    await rig.rule(
        "Slow", {"metric": "latency", "threshold_ms": 1000, "window_seconds": 30}, [hook]
    )
    ev = rig.evaluator()
    assert await ev.run_once() == []  # no requests: no latency, no alert
    await rig.traffic(19, 200, latency_ms=100.0)
    await rig.traffic(1, 200, latency_ms=5000.0)  # 1 slow of 20: above p95's rank (19)
    assert await ev.run_once() == []
    await rig.traffic(1, 200, latency_ms=5000.0)  # 2 slow of 21: p95 (rank 20) is slow
    (t,) = await ev.run_once()
    assert t.event.data["value"] == 5000.0 and t.event.data["unit"] == "ms"
    assert "latency 5000 ms >= 1000 ms over 30 s" == t.event.data["summary"]
    rig.clock[0] += 31  # the window empties: no traffic resolves it
    (r,) = await ev.run_once()
    assert r.event.type == "alert.resolved" and r.event.data["value"] is None


async def test_one_evaluator_holds_the_lease_and_state_survives_it(rig: Rig) -> None:
    hook, _ = await rig.targets()
    await rig.rule("Busy", {"metric": "requests", "threshold": 3, "window_seconds": 60}, [hook])
    await rig.traffic(3)
    config = AlertsConfig(interval_s=1.0)
    a, b = rig.evaluator(config=config), rig.evaluator(config=config)
    assert len(await a.run_once()) == 1
    assert await b.run_once() == [] and b.rounds == 0  # a holds the lease
    rig.clock[0] += 2
    assert await a.run_once() == [] and a.rounds == 2
    rig.clock[0] += 4  # a's lease (3 intervals) lapsed: b takes over, state kept
    assert await b.run_once() == [] and b.rounds == 1
    await rig.rx.wait_for(1)
    assert len(rig.rx.requests) == 1
    assert await a.run_once() == [] and a.rounds == 2  # b holds it now


async def test_racing_evaluators_send_each_change_once(rig: Rig) -> None:
    """Even when two evaluators both hold the lease (a holder stalled past it), the
    state row's conditional update lets one of them send each change."""
    hook, _ = await rig.targets()
    await rig.rule(
        "Errors", {"metric": "error_rate", "threshold": 0.5, "window_seconds": 10}, [hook]
    )
    # The same owner: both pass the lease check every round, as when one stalled past its
    # lease while the other took it over.
    a, b = rig.evaluator(owner="twin"), rig.evaluator(owner="twin")
    sent: list[str] = []
    for step in range(12):
        rig.clock[0] += 11  # a fresh window each round
        await rig.traffic(4, 500 if step % 4 < 2 else 200)
        for got in await asyncio.gather(a.run_once(), b.run_once()):
            sent += [t.event.type for t in got]
    assert a.rounds == b.rounds == 12
    assert a.raced + b.raced > 0  # the two did race for the same changes
    assert sent == ["alert.fired", "alert.resolved"] * 3
    await rig.rx.wait_for(6)
    assert [m["event"] for m in bodies(rig.rx)] == sent


async def test_a_change_whose_sender_died_is_delivered_by_another(rig: Rig) -> None:
    hook, _ = await rig.targets()
    await rig.rule("Busy", {"metric": "requests", "threshold": 1, "window_seconds": 60}, [hook])
    await rig.traffic(1)
    store, never = rig.gw.store, asyncio.Event()

    async def stuck(target: dict[str, Any], event: Any) -> dict[str, Any]:
        await never.wait()
        return {}

    dying = AlertEvaluator(
        store,
        stuck,
        lambda wid, tid: _resources.one(store, wid, "deliveries", tid, "target"),
        clock=lambda: rig.clock[0],
        config=AlertsConfig(interval_s=1.0),
    )
    task = asyncio.create_task(dying.run_once())
    async with asyncio.timeout(5):
        while await store._fetch("SELECT 1 FROM alert_states WHERE state = 'firing'") == []:
            await asyncio.sleep(0.01)
    task.cancel()  # the worker died after recording the change, before sending it
    with contextlib.suppress(asyncio.CancelledError):
        await task
    (event_json,) = (await store._fetch("SELECT event FROM alert_states"))[0]
    other = rig.evaluator(config=AlertsConfig(interval_s=1.0))
    rig.clock[0] += 1
    assert await other.run_once() == [] and other.rounds == 0  # the dead one's lease
    assert rig.rx.requests == []
    rig.clock[0] += 3  # its lease lapsed: the other one delivers the recorded event
    assert await other.run_once() == []
    (got,) = await rig.rx.wait_for(1)
    recorded = orjson.loads(event_json)
    assert recorded.pop("targets") == [hook]  # kept with the event, not sent
    assert orjson.loads(got.body) == recorded
    rig.clock[0] += 1
    await other.run_once()
    assert len(rig.rx.requests) == 1


async def test_stop_releases_the_lease(rig: Rig) -> None:
    a = rig.evaluator(config=AlertsConfig(interval_s=0.05))
    b = rig.evaluator(config=AlertsConfig(interval_s=0.05))
    await a.start()
    try:
        async with asyncio.timeout(5):
            while a.rounds == 0:
                await asyncio.sleep(0.01)
    finally:
        await a.stop()
    assert await b.run_once() == [] and b.rounds == 1


async def test_failed_deliveries_are_retried_on_later_rounds(rig: Rig) -> None:
    hook, slack = await rig.targets()
    await rig.rule(
        "Spend", {"metric": "cost", "threshold": 0.005, "window_seconds": 60}, [hook, slack]
    )
    rig.rx.plan(Reply(503))  # the first message (to the webhook) fails
    ev = rig.evaluator(config=AlertsConfig(max_attempts=3))
    await rig.traffic(5)
    (t,) = await ev.run_once()
    assert [r["delivered"] for r in t.results] == [False, True]
    assert t.event.data["value"] == 0.005 and t.event.data["unit"] == "usd"
    rig.clock[0] += 1
    assert await ev.run_once() == []
    await rig.rx.wait_for(3)
    retried = rig.rx.requests[-1]
    assert retried.path == "/hook" and orjson.loads(retried.body)["id"] == t.event.id
    rig.clock[0] += 1
    await ev.run_once()
    assert len(rig.rx.requests) == 3  # delivered: not sent again


async def test_a_deleted_target_is_not_retried_and_a_sender_that_raised_is(rig: Rig) -> None:
    hook, _ = await rig.targets()
    gone = await rig.post(
        "deliveries", {"name": "gone", "type": "webhook", "config": {"url": rig.rx.url}}
    )
    await rig.rule(
        "Busy", {"metric": "requests", "threshold": 1, "window_seconds": 60}, [gone, hook]
    )
    r = await rig.client.delete(f"/v1/workspaces/default/deliveries/{gone}", headers=AUTH)
    assert r.status_code == 200
    raised: list[str] = []

    async def breaks_once(target: dict[str, Any], event: Any) -> dict[str, Any]:
        if not raised:
            raised.append(target["id"])
            raise RuntimeError("the sender broke")
        return await send(rig.gw, target, event)

    store = rig.gw.store
    ev = AlertEvaluator(
        store,
        breaks_once,
        lambda wid, tid: _resources.one(store, wid, "deliveries", tid, "target"),
        clock=lambda: rig.clock[0],
    )
    await rig.traffic(1)
    (t,) = await ev.run_once()
    outcome = {r["target"]: (r["delivered"], r["retryable"], r["detail"]) for r in t.results}
    assert outcome == {gone: (False, False, "deleted"), hook: (False, True, "the sender broke")}
    assert raised == [hook] and rig.rx.requests == []
    for _ in range(2):  # the next rounds: the hook once, the deleted target never
        rig.clock[0] += 1
        assert await ev.run_once() == []
    (got,) = await rig.rx.wait_for(1)
    assert got.path == "/hook" and orjson.loads(got.body)["id"] == t.event.id
    assert len(rig.rx.requests) == 1


async def test_disabled_rules_are_not_evaluated_and_budget_rules(rig: Rig) -> None:
    hook, _ = await rig.targets()
    body = {
        "name": "Budget",
        "condition": {"metric": "budget", "threshold": 0.8},
        "delivery_targets": [hook],
        "enabled": False,
    }
    rid = await rig.post("alert-rules", body)
    seen: list[Transition] = []

    async def hook_fn(t: Transition) -> None:
        seen.append(t)

    ev = rig.evaluator(on_transition=hook_fn)
    assert await ev.run_once() == []
    r = await rig.client.put(
        f"/v1/workspaces/default/alert-rules/{rid}", json={**body, "enabled": True}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    assert await ev.run_once() == []  # no key has a limit
    rows = await rig.gw.store._fetch("SELECT state FROM alert_states")
    assert rows == [("ok",)]
    now = rig.clock[0]
    await rig.gw.store.create_key(
        KeyRecord("k", "team-bot", "gk_...k", now, now, limit_micros=5_000, limit_reset="daily")
    )
    await rig.traffic(4)  # 4000 of 5000 micro-dollars today: 80 %
    (t,) = await ev.run_once()
    assert t.event.data["value"] == 0.8 and t.event.data["key"] == "team-bot"
    assert t.event.data["period"] == "daily" and t.event.data["limit"] == 0.005
    assert seen == [t]
    await rig.client.delete(f"/v1/workspaces/default/alert-rules/{rid}", headers=AUTH)
    (gone,) = await ev.run_once()  # deleted while firing: resolved, then forgotten
    assert gone.event.data["reason"] == "rule deleted" and seen == [t, gone]
    assert await rig.gw.store._fetch("SELECT state FROM alert_states") == []
    assert await ev.run_once() == [] and seen == [t, gone]


async def test_a_rule_disabled_or_deleted_while_firing_resolves_once(rig: Rig) -> None:
    """Its targets get alert.resolved with the reason, once, and its incident's timeline
    has it; a deleted rule's targets are the ones it fired to."""
    hook, slack = await rig.targets()
    cond = {"metric": "requests", "threshold": 2, "window_seconds": 60}
    body = {"name": "Busy", "condition": cond, "delivery_targets": [hook], "severity": "high"}
    a = await rig.post("alert-rules", body)
    b = await rig.rule("Noisy", cond, [hook, slack])
    ev = rig.evaluator(on_transition=incidents_hook(book_for(rig.gw.store)))
    await rig.traffic(3)
    assert sorted(t.event.type for t in await ev.run_once()) == ["alert.fired"] * 2
    await rig.rx.wait_for(3)
    fired = {m["data"]["ruleId"]: m for m in bodies(rig.rx)}

    r = await rig.client.put(
        f"/v1/workspaces/default/alert-rules/{a}", json={**body, "enabled": False}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    assert await rig.client.delete(f"/v1/workspaces/default/alert-rules/{b}", headers=AUTH)
    rig.clock[0] += 1
    done = {t.rule.id: t for t in await ev.run_once()}
    assert set(done) == {a, b}
    for rid, reason in ((a, "rule disabled"), (b, "rule deleted")):
        assert all(res["delivered"] for res in done[rid].results)
        data = done[rid].event.data
        assert (data["status"], data["reason"], data["value"]) == ("resolved", reason, None)
        assert data["summary"] == f"requests: {reason} while firing"
        assert data["firedEventId"] == fired[rid]["id"] and data["ruleId"] == rid
    assert done[b].rule.name == "Noisy" and done[b].rule.targets == (hook, slack)
    await rig.rx.wait_for(6)
    resolved = [m for m in bodies(rig.rx) if m["event"] == "alert.resolved"]
    assert sorted(m["data"]["reason"] for m in resolved) == ["rule deleted", "rule disabled"]
    assert len(bodies(rig.rx, "/slack")) == 2  # b's second target too
    assert await rig.gw.store._fetch("SELECT * FROM alert_states") == []

    rig.clock[0] += 1  # once: nothing more on later rounds
    await rig.traffic(3)
    assert await ev.run_once() == [] and await ev.run_once() == []
    assert len(rig.rx.requests) == 6

    r = await rig.client.get("/v1/workspaces/default/incidents", headers=AUTH)
    incidents = {i["source"]["ref"]: i for i in r.json()["data"]}
    for rid in (a, b):
        got = await rig.client.get(
            f"/v1/workspaces/default/incidents/{incidents[rid]['id']}", headers=AUTH
        )
        timeline = [(e["kind"], e["data"]["event"]["id"]) for e in got.json()["data"]["timeline"]]
        assert timeline == [("opened", fired[rid]["id"]), ("alert.resolved", done[rid].event.id)]


async def test_a_deleted_rules_undelivered_resolution_is_retried(rig: Rig) -> None:
    hook, _ = await rig.targets()
    rid = await rig.rule(
        "Busy", {"metric": "requests", "threshold": 1, "window_seconds": 60}, [hook]
    )
    ev = rig.evaluator(config=AlertsConfig(max_attempts=3))
    await rig.traffic(1)
    (fired,) = await ev.run_once()
    await rig.rx.wait_for(1)
    await rig.client.delete(f"/v1/workspaces/default/alert-rules/{rid}", headers=AUTH)
    rig.rx.plan(Reply(503))  # the resolution fails the first time
    rig.clock[0] += 1
    (gone,) = await ev.run_once()
    assert [r["delivered"] for r in gone.results] == [False]
    (row,) = await rig.gw.store._fetch("SELECT state, pending FROM alert_states")
    assert row == ("ok", f'["{hook}"]')  # kept until delivered
    rig.clock[0] += 1
    assert await ev.run_once() == []
    await rig.rx.wait_for(3)
    retried = orjson.loads(rig.rx.requests[-1].body)
    assert (retried["id"], retried["data"]["reason"]) == (gone.event.id, "rule deleted")
    assert await rig.gw.store._fetch("SELECT * FROM alert_states") == []
    rig.clock[0] += 1
    assert await ev.run_once() == [] and len(rig.rx.requests) == 3


async def test_an_unusable_stored_rule_does_not_silence_the_others(rig: Rig) -> None:
    hook, _ = await rig.targets()
    good = await rig.rule(
        "Busy", {"metric": "requests", "threshold": 1, "window_seconds": 60}, [hook]
    )
    broken = [  # records the API would refuse, written straight into the store
        ("rule_nocond", {"name": "x"}),
        ("rule_bogus", {"name": "y", "condition": {"metric": "bogus", "threshold": 1}}),
    ]
    await rig.gw.store._transaction(
        [
            (
                "INSERT INTO workspace_resources (workspace_id, kind, id, body, created_at, "
                "updated_at) VALUES ('default', 'alert-rules', ?, ?, 0, 0)",
                (rid, orjson.dumps(body).decode()),
            )
            for rid, body in broken
        ]
    )
    await rig.traffic(1)
    (t,) = await rig.evaluator().run_once()
    assert t.rule.id == good and t.event.type == "alert.fired"


def test_config_section() -> None:
    assert parse_alerts(None) == AlertsConfig()
    got = parse_alerts({"interval_s": 2, "lease_s": 7.5, "max_attempts": 2, "enabled": False})
    assert got == AlertsConfig(False, 2.0, 7.5, 2)
    for bad in (
        [],
        {"interval": 1},
        {"interval_s": 0},
        {"interval_s": "1"},
        {"lease_s": -1},
        {"enabled": "yes"},
        {"max_attempts": 0},
    ):
        with pytest.raises(ConfigError):
            parse_alerts(bad)
