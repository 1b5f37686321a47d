"""``/verify`` of a delivery target and ``/test`` of an alert rule send a real, signed
message to an HTTP receiver on 127.0.0.1 (Slack targets get a Slack-formatted body)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from tests.control._app import EventsGw, client_for, events_gw
from tests.support.servers import free_port
from tests.support.smtp import SmtpReceiver

from tollhouse.control import _resources
from tollhouse.control._delivery_send import send
from tollhouse.events.evaluator import AlertEvaluator
from tollhouse.store import SqlStore
from tollhouse.store.base import SpendRow

PASSWORD = "smtp-" + "Kx7" * 6


@dataclass
class Receiver:
    url: str
    seen: list[tuple[str, dict[str, str], bytes]]
    status: list[int]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    seen: list[tuple[str, dict[str, str], bytes]] = []
    status = [200]

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=status[0])

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}", seen, status)
    finally:
        await runner.cleanup()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver(users={"alerts": PASSWORD}) as receiver:
        yield receiver


@pytest.fixture
async def egw(db_url: str) -> AsyncIterator[EventsGw]:
    async with events_gw(db_url) as g:
        yield g


@pytest.fixture
async def eclient(egw: EventsGw) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(egw) as c:
        yield c


async def add_target(c: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]) -> str:
    r = await c.post("/v1/workspaces/default/deliveries", json=body, headers=admin)
    assert r.status_code == 201, r.text
    rid: str = r.json()["data"]["id"]
    return rid


async def answer_schema(c: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """The ``data`` schema ``/openapi.json`` declares for ``POST path``'s 200 answer."""
    doc = (await c.get("/openapi.json")).json()
    ok = doc["paths"][path]["post"]["responses"]["200"]
    data: dict[str, Any] = ok["content"]["application/json"]["schema"]["properties"]["data"]
    return data


def holds(answer: dict[str, Any], schema: dict[str, Any]) -> None:
    """Every declared field is in the answer and nothing else; each value of its type."""
    assert set(answer) == set(schema["properties"]) == set(schema["required"]), answer
    kinds = {"string": str, "boolean": bool, "integer": int, "null": type(None)}
    for name, value in answer.items():
        declared = schema["properties"][name]["type"]
        allowed = [declared] if isinstance(declared, str) else declared
        assert any(type(value) is kinds[k] for k in allowed), (name, value, declared)


async def test_verify_and_rule_test(
    eclient: httpx.AsyncClient, admin: dict[str, str], receiver: Receiver, smtp: SmtpReceiver
) -> None:
    verified = await answer_schema(eclient, "/v1/workspaces/{id}/deliveries/{rid}/verify")
    tested = await answer_schema(eclient, "/v1/workspaces/{id}/alert-rules/{rid}/test")
    assert tested["properties"]["results"]["items"] == verified
    hook = await add_target(
        eclient,
        admin,
        {
            "name": "hook",
            "type": "webhook",
            "config": {"url": f"{receiver.url}/hook", "secret": "whsec"},
        },
    )
    slack = await add_target(
        eclient,
        admin,
        {"name": "slack", "type": "slack", "config": {"webhook_url": f"{receiver.url}/slack"}},
    )
    mail = await add_target(
        eclient,
        admin,
        {
            "name": "mail",
            "type": "email",
            "config": {"to": ["a@b.io"], "smtp_host": "127.0.0.1", "smtp_port": smtp.port},
        },
    )
    gone = await add_target(
        eclient, admin, {"name": "gone", "type": "webhook", "config": {"url": receiver.url}}
    )
    r = await eclient.post(f"/v1/workspaces/default/deliveries/{hook}/verify", headers=admin)
    assert r.status_code == 200
    assert r.json()["data"] == {
        "target": hook,
        "type": "webhook",
        "delivered": True,
        "retryable": False,
        "status": 200,
        "detail": "",
        "event_id": r.json()["data"]["event_id"],
    }
    holds(r.json()["data"], verified)
    path, headers, body = receiver.seen[-1]
    assert path == "/hook"
    payload = orjson.loads(body)
    assert payload["event"] == "incident.opened" and payload["data"]["test"] is True
    assert payload["teamId"] == "default"
    assert any("signature" in k.lower() for k in headers)

    rule = await eclient.post(
        "/v1/workspaces/default/alert-rules",
        json={
            "name": "High Latency",
            "condition": {"metric": "latency", "threshold_ms": 3000},
            "delivery_targets": [hook, slack, mail, gone],
            "severity": "high",
        },
        headers=admin,
    )
    rid = rule.json()["data"]["id"]
    deleted = await eclient.delete(f"/v1/workspaces/default/deliveries/{gone}", headers=admin)
    assert deleted.status_code == 200
    receiver.seen.clear()
    r = await eclient.post(f"/v1/workspaces/default/alert-rules/{rid}/test", headers=admin)
    assert r.status_code == 200
    assert set(r.json()["data"]) == set(tested["required"]) == {"event_id", "results"}
    event_id = r.json()["data"]["event_id"]
    for result in r.json()["data"]["results"]:
        holds(result, verified)
        assert result["event_id"] == event_id
    results = {x["target"]: x for x in r.json()["data"]["results"]}
    assert results[hook]["delivered"] and results[slack]["delivered"]
    assert results[mail]["delivered"] is True and results[mail]["status"] == 250
    assert results[mail]["type"] == "email" and results[slack]["type"] == "slack"
    assert results[gone] == {  # deleted after the rule named it: reported, never retried
        "target": gone,
        "type": None,
        "delivered": False,
        "retryable": False,
        "status": None,
        "detail": "deleted",
        "event_id": event_id,
    }
    (got,) = smtp.wait(1)
    assert got.message["Subject"] == (  # what the rule sends when it fires, marked test
        "[Tollhouse] [high] Alert firing: High Latency (latency >= 3000 ms over 300 s) (test)"
    )
    assert "rule: High Latency" in got.message.get_content()
    by_path = {p: orjson.loads(b) for p, _, b in receiver.seen}
    assert by_path["/hook"]["data"]["rule"] == "High Latency"
    assert "blocks" in by_path["/slack"] and "text" in by_path["/slack"]

    # a failing target is reported, not raised
    receiver.status[0] = 500
    r = await eclient.post(f"/v1/workspaces/default/deliveries/{hook}/verify", headers=admin)
    assert r.json()["data"]["delivered"] is False and r.json()["data"]["status"] == 500
    assert r.json()["data"]["retryable"] is True and r.json()["data"]["detail"] == "HTTP 500"
    holds(r.json()["data"], verified)


async def test_verify_guards(eclient: httpx.AsyncClient, admin: dict[str, str]) -> None:
    viewer = (
        await eclient.post(
            "/v1/workspaces/default/api-keys", json={"name": "v", "role": "viewer"}, headers=admin
        )
    ).json()["key"]
    target = await add_target(
        eclient, admin, {"name": "ext", "type": "webhook", "config": {"url": "http://10.1.2.3/x"}}
    )
    url = f"/v1/workspaces/default/deliveries/{target}/verify"
    assert (
        await eclient.post(url, headers={"Authorization": f"Bearer {viewer}"})
    ).status_code == 403
    r = await eclient.post(url, headers=admin)  # a private address is refused by the SSRF guard
    assert r.status_code == 200 and r.json()["data"]["delivered"] is False
    assert (
        await eclient.post("/v1/workspaces/default/deliveries/nope/verify", headers=admin)
    ).status_code == 404


async def test_email_verify_over_smtp_and_the_password_never_shows(
    eclient: httpx.AsyncClient,
    admin: dict[str, str],
    smtp: SmtpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = {
        "to": ["oncall@example.com"],
        "from": "gate@example.com",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_user": "alerts",
        "smtp_password": PASSWORD,
        "starttls": False,
    }
    base = "/v1/workspaces/default/deliveries"
    made = await eclient.post(
        base, json={"name": "on-call", "type": "email", "config": config}, headers=admin
    )
    assert made.status_code == 201, made.text
    tid = made.json()["data"]["id"]
    answers = [made]
    answers.append(r := await eclient.post(f"{base}/{tid}/verify", headers=admin))
    assert r.status_code == 200 and r.json()["data"]["delivered"] is True, r.text
    (got,) = smtp.wait(1)
    assert got.authenticated and got.rcpt_tos == ["oncall@example.com"]
    assert got.message["To"] == "oncall@example.com" and got.message["From"] == config["from"]
    assert got.message["Subject"] == "[Tollhouse] Incident opened: default (test)"

    # wrong password: delivered false with the reason, still no password anywhere
    wrong = {**config, "smtp_password": PASSWORD[::-1]}
    answers.append(
        r := await eclient.put(
            f"{base}/{tid}",
            json={"name": "on-call", "type": "email", "config": wrong},
            headers=admin,
        )
    )
    assert r.status_code == 200, r.text
    answers.append(r := await eclient.post(f"{base}/{tid}/verify", headers=admin))
    assert r.status_code == 200 and r.json()["data"]["delivered"] is False
    assert r.json()["data"]["detail"].startswith("authentication failed")

    # a port nobody listens on: delivered false, connection refused
    port = free_port()
    refused = {**config, "smtp_port": port}
    answers.append(
        await eclient.put(
            f"{base}/{tid}",
            json={"name": "on-call", "type": "email", "config": refused},
            headers=admin,
        )
    )
    answers.append(r := await eclient.post(f"{base}/{tid}/verify", headers=admin))
    assert r.json()["data"] == {
        "target": tid,
        "type": "email",
        "delivered": False,
        "retryable": True,
        "status": None,
        "detail": f"connection refused by 127.0.0.1:{port}",
        "event_id": r.json()["data"]["event_id"],
    }
    answers.append(await eclient.get(f"{base}/{tid}", headers=admin))
    answers.append(await eclient.get(base, headers=admin))
    answers.append(await eclient.get("/v1/audit/logs", headers=admin))
    assert answers[-3].json()["data"]["config"]["smtp_password"] == "********"
    for answer in answers:
        assert PASSWORD not in answer.text and PASSWORD[::-1] not in answer.text
    for record in caplog.records:
        assert PASSWORD not in record.getMessage() and PASSWORD[::-1] not in record.getMessage()


async def busy(
    egw: EventsGw,
    eclient: httpx.AsyncClient,
    admin: dict[str, str],
    targets: list[str],
    clock: list[float],
    **extra: Any,
) -> AlertEvaluator:
    """A rule "Busy" (3 requests a minute) to ``targets``, 3 requests in the store, and
    an evaluator on ``clock`` sending through the control plane's path."""
    r = await eclient.post(
        "/v1/workspaces/default/alert-rules",
        json={
            "name": "Busy",
            "condition": {"metric": "requests", "threshold": 3, "window_seconds": 60},
            "delivery_targets": targets,
            **extra,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    store = egw.store
    assert isinstance(store, SqlStore)
    rows = [SpendRow(f"gen-{i}", "k", "m", "p", "m", clock[0] - 1) for i in range(3)]
    await store.insert_spend(rows)
    return AlertEvaluator(
        store,
        lambda target, event: send(egw, target, event),
        lambda wid, tid: _resources.one(store, wid, "deliveries", tid, "target"),
        clock=lambda: clock[0],
    )


async def test_alert_firing_and_resolving_reach_an_email_target(
    egw: EventsGw, eclient: httpx.AsyncClient, admin: dict[str, str], smtp: SmtpReceiver
) -> None:
    """The background evaluator sends through the same path: a rule with an email target
    fires (and later resolves) as two messages at the SMTP receiver."""
    config = {"to": ["oncall@example.com"], "smtp_host": "127.0.0.1", "smtp_port": smtp.port}
    mail = await add_target(eclient, admin, {"name": "mail", "type": "email", "config": config})
    clock = [time.time()]
    evaluator = await busy(egw, eclient, admin, [mail], clock, severity="critical")
    (fired,) = await evaluator.run_once()
    assert fired.results[0]["delivered"] is True, fired.results
    (got,) = smtp.wait(1)
    assert got.rcpt_tos == ["oncall@example.com"]
    assert got.message["Subject"].startswith("[Tollhouse] [critical] Alert firing: Busy")
    assert got.message["X-Tollhouse-Event-Id"] == fired.event.id
    assert "status: firing" in got.message.get_content()

    clock[0] += 61  # the requests leave the window: the alert clears
    (resolved,) = await evaluator.run_once()
    assert resolved.event.type == "alert.resolved"
    got = smtp.wait(2)[1]
    subject = str(got.message["Subject"]).strip()  # folded: the unfolded value keeps a space
    assert subject == "[Tollhouse] [critical] Alert resolved: Busy (requests 0 < 3 over 60 s)"


async def test_an_alert_is_retried_after_an_smtp_4xx_and_not_after_a_5xx(
    egw: EventsGw, eclient: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """The evaluator retries by the sender's verdict, not by reading the SMTP reply code
    as an HTTP status: 535 (authentication failed) is final, 451 (greylisted) is tried
    again on the next round with the same event."""
    greylisted = "451 4.7.1 Greylisted, try again later"
    with (
        SmtpReceiver(users={"alerts": PASSWORD}) as strict,
        SmtpReceiver(replies={"RCPT": greylisted}) as grey,
    ):
        to = {"to": ["oncall@example.com"], "smtp_host": "127.0.0.1"}
        wrong = {"smtp_user": "alerts", "smtp_password": PASSWORD[::-1], "starttls": False}
        denied = await add_target(
            eclient,
            admin,
            {
                "name": "denied",
                "type": "email",
                "config": {**to, "smtp_port": strict.port, **wrong},
            },
        )
        later = await add_target(
            eclient,
            admin,
            {"name": "later", "type": "email", "config": {**to, "smtp_port": grey.port}},
        )
        clock = [time.time()]
        evaluator = await busy(egw, eclient, admin, [denied, later], clock)
        (fired,) = await evaluator.run_once()
        outcome = {
            x["target"]: (x["delivered"], x["retryable"], x["status"]) for x in fired.results
        }
        assert outcome == {denied: (False, False, 535), later: (False, True, 451)}
        tried = list(strict.logins)  # one attempt (aiosmtplib tries each AUTH mechanism)
        assert tried and all(login == ("alerts", False) for login in tried)
        assert grey.received == []

        grey.replies = {}  # the greylisting server accepts now
        for _ in range(2):  # the next rounds: the 451 target once, the 535 one never
            clock[0] += 1
            assert await evaluator.run_once() == []
        (got,) = grey.wait(1)
        assert got.message["X-Tollhouse-Event-Id"] == fired.event.id
        assert len(grey.received) == 1 and strict.logins == tried
        assert strict.received == []
