"""The background alert evaluator: every ``interval`` seconds, every enabled alert rule of
every workspace is measured over its window (``alert_window``) and, when its condition
becomes true, ``alert.fired`` goes to each of its delivery targets; while it stays true
nothing more is sent; when it clears, ``alert.resolved`` follows.

Several workers and replicas run one evaluator each.  Two things keep it to one message
per change (migration 0009):

- a lease row (``alert_lease``): the evaluator holding it runs the rounds and renews it
  each round; the others skip until it lapses (``lease_s``, three intervals by default),
  so a stopped or dead holder is replaced within that time;
- the state row of each rule (``alert_states``): a change of state is a conditional
  UPDATE (``... WHERE state = 'ok'``), so even two evaluators racing in the same round
  flip the row once, and only the one whose UPDATE counted sends.  The state survives
  restarts, so a restarted gateway does not fire again what already fired.

Sending goes through ``control._delivery_send.send`` (one signed attempt per target;
Slack targets get a Slack body).  Targets that failed with a retryable answer stay in the
row's ``pending`` list and are tried again on the next rounds (same event id, so a
receiver can de-duplicate), up to ``max_attempts`` attempts; an evaluator that died
between the change and its first delivery is replaced once a lease has passed.

A rule firing opens (or joins) an incident through the incident book; clearing appends
``alert.resolved`` to its timeline (``incidents_hook``).  A rule disabled or deleted while
firing resolves the same way, once, with ``reason`` ``rule disabled`` / ``rule deleted``
(a deleted rule's targets are kept with its stored event); its state is forgotten once
that message is delivered or given up on.

Rules are workspace resources and measure their own workspace's traffic: the spend rows
of the workspace's virtual keys (``default`` sees its own keys', not everyone's; see
``alert_window``).  Events carry the workspace id as ``teamId`` (as the rule's ``test``
call does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tollhouse.errors import ConfigError, NotFound, TollhouseError
from tollhouse.events.alert_window import (
    BudgetUse,
    WindowStats,
    breached,
    budget_use,
    metric_value,
    threshold_of,
    window_stats,
)
from tollhouse.events.targets import not_sent
from tollhouse.events.types import ALERT_FIRED, ALERT_RESOLVED, Event, usd
from tollhouse.store import SqlStore

if TYPE_CHECKING:  # control imports this module (a rule's test event)
    from tollhouse.control.incidents_book import IncidentBook

log = logging.getLogger("tollhouse.alerts")

Record = dict[str, Any]
# send(target record, event) -> events.targets.deliver's answer: {target, type, delivered,
# retryable, status, detail, event_id} (``status`` is an HTTP status or an SMTP reply code)
Send = Callable[[Record, Event], Awaitable[Record]]
# load(workspace_id, target_id) -> the stored delivery target (NotFound when deleted)
LoadTarget = Callable[[str, str], Awaitable[Record]]

_UNITS = {
    "latency": "ms",
    "error_rate": "fraction",
    "cost": "usd",
    "tokens": "tokens",
    "requests": "requests",
    "budget": "fraction",
}
_RULES = "SELECT workspace_id, id, body FROM workspace_resources WHERE kind = 'alert-rules'"
_STATES = "SELECT workspace_id, rule_id, state, event, pending, attempts, since FROM alert_states"
_TAKE_LEASE = (
    "UPDATE alert_lease SET owner = ?, expires_at = ? "
    "WHERE name = 'evaluator' AND (owner = ? OR expires_at < ?)"
)
_RELEASE_LEASE = "UPDATE alert_lease SET expires_at = 0 WHERE name = 'evaluator' AND owner = ?"
_NEW_STATE = (
    "INSERT INTO alert_states (workspace_id, rule_id, state, since, evaluated_at) "
    "VALUES (?, ?, 'ok', ?, ?) ON CONFLICT (workspace_id, rule_id) DO NOTHING"
)
_FLIP = (
    "UPDATE alert_states SET state = ?, value = ?, since = ?, evaluated_at = ?, "
    "event_id = ?, event = ?, pending = ?, attempts = 0 "
    "WHERE workspace_id = ? AND rule_id = ? AND state = ?"
)
_DELIVERED = (
    "UPDATE alert_states SET pending = ?, attempts = attempts + 1 "
    "WHERE workspace_id = ? AND rule_id = ? AND event_id = ?"
)
_FORGET = "DELETE FROM alert_states WHERE workspace_id = ? AND rule_id = ?"
# A withdrawn rule's state, once nothing is left to deliver (or to try again).
_FORGET_DONE = (
    "DELETE FROM alert_states WHERE workspace_id = ? AND rule_id = ? AND state = 'ok' "
    "AND (pending = '[]' OR attempts >= ?)"
)


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The ``alerts:`` config section."""

    enabled: bool = True
    interval_s: float = 10.0
    lease_s: float | None = None  # default: three intervals
    max_attempts: int = 5


def parse_alerts(raw: Any) -> AlertsConfig:
    if raw is None:
        return AlertsConfig()
    if not isinstance(raw, dict):
        raise ConfigError("alerts: expected a mapping")
    unknown = sorted(set(raw) - {"enabled", "interval_s", "lease_s", "max_attempts"})
    if unknown:
        raise ConfigError(f"alerts: unknown keys {', '.join(unknown)}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("alerts.enabled: expected true or false")
    interval, lease = raw.get("interval_s", 10.0), raw.get("lease_s")
    attempts = raw.get("max_attempts", 5)
    for name, value in (("interval_s", interval), ("lease_s", lease)):
        if value is not None and (type(value) not in (int, float) or not 0 < value <= 3600):
            raise ConfigError(f"alerts.{name}: expected seconds in (0, 3600]")
    if type(attempts) is not int or not 1 <= attempts <= 100:
        raise ConfigError("alerts.max_attempts: expected an integer in 1..100")
    return AlertsConfig(enabled, float(interval), None if lease is None else float(lease), attempts)


@dataclass(frozen=True, slots=True)
class Rule:
    workspace_id: str
    id: str
    name: str
    severity: str
    condition: dict[str, Any]
    targets: tuple[str, ...]

    @property
    def metric(self) -> str:
        return str(self.condition["metric"])

    @property
    def window_s(self) -> int:
        return int(self.condition.get("window_seconds", 300))

    @classmethod
    def of(cls, workspace_id: str, rid: str, body: Record) -> Rule:
        return cls(
            workspace_id,
            rid,
            str(body.get("name", rid)),
            str(body.get("severity", "medium")),
            dict(body["condition"]),
            tuple(body.get("delivery_targets") or ()),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule that fired or resolved in a round, the event sent and each target's outcome."""

    rule: Rule
    event: Event
    results: list[Record] = field(default_factory=list)


# Called after a rule fires or resolves (the incidents book joins it there).
OnTransition = Callable[[Transition], Awaitable[None]]


def incidents_hook(book: IncidentBook) -> OnTransition:
    """A rule firing opens an incident (source ``alert_rule``, ref the rule id, the rule's
    severity) or joins the one still open for the rule; clearing appends
    ``alert.resolved`` to it (a person resolves the incident)."""

    async def on_transition(t: Transition) -> None:
        rule = t.rule
        if t.event.type == ALERT_FIRED:
            await book.open_or_join(
                rule.workspace_id,
                source_kind="alert_rule",
                source_ref=rule.id,
                title=f"{rule.name}: {t.event.data['summary']}",
                severity=rule.severity,
                event=t.event,
            )
        else:
            await book.append_to_source(
                rule.workspace_id,
                source_kind="alert_rule",
                source_ref=rule.id,
                kind=ALERT_RESOLVED,
                data={"event": t.event.payload()},
            )

    return on_transition


def _shown(metric: str, value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 6 if metric in ("cost", "error_rate", "budget") else 3)


def summary(rule: Rule, value: float | None, threshold: float) -> str:
    """``error_rate 0.75 >= 0.5 over 60 s``; ``latency: no requests over 300 s``."""
    over = "in the current budget window" if rule.metric == "budget" else f"over {rule.window_s} s"
    if value is None:
        return f"{rule.metric}: no requests {over}"
    op = ">=" if breached(value, threshold) else "<"
    unit = " ms" if rule.metric == "latency" else (" USD" if rule.metric == "cost" else "")
    return f"{rule.metric} {_shown(rule.metric, value):g}{unit} {op} {threshold:g}{unit} {over}"


def alert_data(
    rule: Rule,
    status: str,
    value: float | None,
    threshold: float,
    text: str,
    extra: Record | None = None,
) -> Record:
    """The ``data`` of ``alert.fired`` / ``alert.resolved``."""
    return {
        "rule": rule.name,
        "ruleId": rule.id,
        "workspaceId": rule.workspace_id,
        "severity": rule.severity,
        "status": status,
        "metric": rule.metric,
        "value": _shown(rule.metric, value),
        "threshold": threshold,
        "unit": _UNITS[rule.metric],
        "windowSeconds": rule.window_s,
        "summary": text,
        **(extra or {}),
    }


def rule_test_event(workspace_id: str, rid: str, record: Record) -> Event:
    """What a rule's ``POST …/test`` sends: the ``alert.fired`` it would send, marked
    ``"test": true``, without a measured value."""
    rule = Rule.of(workspace_id, rid, record)
    threshold = threshold_of(rule.condition)
    over = "" if rule.metric == "budget" else f" over {rule.window_s} s"
    unit = " ms" if rule.metric == "latency" else (" USD" if rule.metric == "cost" else "")
    text = f"{rule.metric} >= {threshold:g}{unit}{over}"
    data = alert_data(rule, "firing", None, threshold, text, {"test": True})
    return Event(ALERT_FIRED, data, team_id=workspace_id)


def retryable(result: Record) -> bool:
    """A failed delivery worth another attempt: the sender's own verdict (no answer,
    timeout, HTTP 429/5xx, SMTP 4xx; never a deleted target).  ``status`` is not read:
    for email it is an SMTP reply code, where 5xx is final and 4xx temporary."""
    return not result.get("delivered") and bool(result.get("retryable"))


class AlertEvaluator:
    def __init__(
        self,
        store: SqlStore,
        send: Send,
        load_target: LoadTarget,
        *,
        config: AlertsConfig | None = None,
        on_transition: OnTransition | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        self.config = config or AlertsConfig()
        self._store = store
        self._send = send
        self._load_target = load_target
        self._on_transition = on_transition
        self._clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_s = self.config.lease_s or 3 * self.config.interval_s
        self.rounds = 0  # rounds this evaluator ran (it held the lease)
        self.raced = 0  # changes another evaluator recorded first (and sent)
        self.fired = 0
        self.resolved = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def stats(self) -> dict[str, int]:
        """Counts for the metrics module (``tollhouse_alert*``)."""
        return {
            "rounds": self.rounds,
            "fired": self.fired,
            "resolved": self.resolved,
            "raced": self.raced,
        }

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None and self.config.enabled:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="alert-evaluator")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:  # let another worker or replica take over without waiting for the lapse
            await self._store._transaction([(_RELEASE_LEASE, (self.owner,))])
        except TollhouseError as exc:
            log.warning("releasing the alert lease failed: %s", exc.message)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except TollhouseError as exc:
                log.warning("alert evaluation failed: %s", exc.message)
            except Exception:
                log.exception("alert evaluation failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.interval_s)

    # -- one round ----------------------------------------------------------------------

    async def take_lease(self, now: float) -> bool:
        counts = await self._store._transaction(
            [(_TAKE_LEASE, (self.owner, now + self.lease_s, self.owner, now))]
        )
        return counts[0] == 1

    async def run_once(self) -> list[Transition]:
        """One evaluation round (nothing when another evaluator holds the lease)."""
        now = self._clock()
        if not await self.take_lease(now):
            return []
        self.rounds += 1
        rules = []
        disabled: dict[tuple[str, str], Rule | None] = {}
        for wid, rid, raw in await self._store._fetch(_RULES):
            body = orjson.loads(raw)
            if not body.get("enabled", True):
                try:
                    disabled[wid, rid] = Rule.of(wid, rid, body)
                except (KeyError, TypeError, ValueError):
                    disabled[wid, rid] = None
                continue
            try:
                rules.append(Rule.of(wid, rid, body))
            except (KeyError, TypeError, ValueError):
                log.warning("alert rule %s/%s has no usable condition: skipped", wid, rid)
        states = {(r[0], r[1]): r[2:] for r in await self._store._fetch(_STATES)}
        measure = _Measure(self._store, now)
        done: list[Transition] = []
        for rule in rules:
            state = states.pop((rule.workspace_id, rule.id), None)
            try:
                t = await self._evaluate(rule, state, measure, now)
            except TollhouseError:
                raise  # the store is down: the round fails (and is logged) once
            except Exception:  # one unusable rule must not silence the others
                log.exception("alert rule %s/%s could not be evaluated", rule.workspace_id, rule.id)
                continue
            if t is not None:
                done.append(t)
        for (wid, rid), state in states.items():  # rules deleted or disabled
            gone = "rule disabled" if (wid, rid) in disabled else "rule deleted"
            try:
                t = await self._withdraw(wid, rid, state, disabled.get((wid, rid)), gone, now)
            except TollhouseError:
                raise
            except Exception:
                log.exception("alert rule %s/%s could not be withdrawn", wid, rid)
                continue
            if t is not None:
                done.append(t)
        return done

    async def _withdraw(
        self,
        wid: str,
        rid: str,
        state: tuple[Any, ...],
        rule: Rule | None,
        reason: str,
        now: float,
    ) -> Transition | None:
        """A rule deleted or disabled.  Firing, it resolves once (``alert.resolved`` with
        ``reason`` to its targets and on its incident's timeline, as when it clears; a
        deleted rule's name, condition and targets come from its stored firing); what was
        not delivered is retried on later rounds as usual; then its state is forgotten."""
        current, raw_event, pending = state[0], state[1], state[2]
        stored = orjson.loads(raw_event) if raw_event else None
        if stored is not None:
            rule = rule or _stored_rule(wid, rid, stored)
        transition = None
        if rule is None:  # nothing to tell anyone: an unusable rule that never fired
            await self._store._transaction([(_FORGET, (wid, rid))])
            return None
        if current == "firing":
            threshold = float((stored or {}).get("data", {}).get("threshold", 0.0))
            with contextlib.suppress(KeyError, TypeError, ValueError):
                threshold = threshold_of(rule.condition)
            text = f"{rule.metric}: {reason} while firing"
            transition = await self._flip(
                rule, "firing", None, threshold, {"reason": reason}, now, text=text
            )
        elif self._retry_due(state, now):
            await self._retry(rule, raw_event, orjson.loads(pending))
        forget = (_FORGET_DONE, (wid, rid, self.config.max_attempts))
        await self._store._transaction([forget])
        return transition

    async def _evaluate(
        self, rule: Rule, state: tuple[Any, ...] | None, measure: _Measure, now: float
    ) -> Transition | None:
        if state is None:
            await self._store._transaction([(_NEW_STATE, (rule.workspace_id, rule.id, now, now))])
        current = "ok" if state is None else state[0]
        value, extra = await measure.value(rule)
        threshold = threshold_of(rule.condition)
        if breached(value, threshold) != (current == "firing"):
            return await self._flip(rule, current, value, threshold, extra, now)
        if state is not None and self._retry_due(state, now):
            await self._retry(rule, state[1], orjson.loads(state[2]))
        return None

    async def _flip(
        self,
        rule: Rule,
        current: str,
        value: float | None,
        threshold: float,
        extra: Record,
        now: float,
        *,
        text: str | None = None,
    ) -> Transition | None:
        fired = current == "ok"
        status = "firing" if fired else "resolved"
        text = summary(rule, value, threshold) if text is None else text
        data = alert_data(rule, status, value, threshold, text, extra)
        if not fired:
            previous = await self._fired_event(rule)
            if previous is not None:
                data["firedEventId"] = previous.id
                data["firedAt"] = previous.timestamp
        event = Event(ALERT_FIRED if fired else ALERT_RESOLVED, data, team_id=rule.workspace_id)
        step = (
            _FLIP,
            (
                "firing" if fired else "ok",
                value,
                now,
                now,
                event.id,
                # the targets too: a rule deleted while firing still tells them it resolved
                orjson.dumps({**event.payload(), "targets": list(rule.targets)}).decode(),
                orjson.dumps(list(rule.targets)).decode(),
                rule.workspace_id,
                rule.id,
                current,
            ),
        )
        if (await self._store._transaction([step]))[0] != 1:
            self.raced += 1  # another evaluator changed it first: it sends
            return None
        log.info("alert %s %s: %s", rule.id, status, data["summary"])
        if fired:
            self.fired += 1
        else:
            self.resolved += 1
        results = await self._deliver(rule, event, list(rule.targets))
        transition = Transition(rule, event, results)
        if self._on_transition is not None:
            try:
                await self._on_transition(transition)
            except Exception:
                log.exception("alert %s: the transition hook failed", rule.id)
        return transition

    def _retry_due(self, state: tuple[Any, ...], now: float) -> bool:
        """Targets left to deliver to, and not while the first delivery may still be
        under way (attempts 0: the evaluator that made the change is sending; after a
        lease it is taken as dead and the others take over)."""
        _, _, pending, attempts, since = state
        if pending == "[]" or attempts >= self.config.max_attempts:
            return False
        return attempts > 0 or float(since) < now - self.lease_s

    async def _fired_event(self, rule: Rule) -> Event | None:
        rows = await self._store._fetch(
            "SELECT event FROM alert_states WHERE workspace_id = ? AND rule_id = ?",
            (rule.workspace_id, rule.id),
        )
        if not rows or not rows[0][0]:
            return None
        return Event.from_payload(orjson.loads(rows[0][0]))

    async def _retry(self, rule: Rule, raw_event: str, pending: list[str]) -> None:
        event = Event.from_payload(orjson.loads(raw_event))
        await self._deliver(rule, event, pending)

    async def _deliver(self, rule: Rule, event: Event, target_ids: list[str]) -> list[Record]:
        results: list[Record] = []
        for tid in target_ids:
            try:
                target = await self._load_target(rule.workspace_id, tid)
            except NotFound:
                results.append(not_sent(tid, event, "deleted", retryable=False))
                continue
            try:
                results.append(await self._send(target, event))
            except Exception as exc:  # one broken target must not stop the others
                log.warning("alert %s: sending to %s failed: %s", rule.id, tid, exc)
                results.append(not_sent(tid, event, str(exc), retryable=True))
        again = [r["target"] for r in results if retryable(r)]
        for r in results:
            if not r.get("delivered"):
                log.warning(
                    "alert %s: %s to target %s not delivered: %s",
                    rule.id,
                    event.type,
                    r.get("target"),
                    r.get("detail") or r.get("status"),
                )
        step = (
            _DELIVERED,
            (orjson.dumps(again).decode(), rule.workspace_id, rule.id, event.id),
        )
        await self._store._transaction([step])
        return results


def _stored_rule(wid: str, rid: str, stored: Record) -> Rule | None:
    """A deleted rule as its last stored event describes it (``None`` when it cannot)."""
    data = stored.get("data")
    if not isinstance(data, dict) or data.get("metric") not in _UNITS:
        return None
    metric = str(data["metric"])
    condition = {
        "metric": metric,
        "threshold_ms" if metric == "latency" else "threshold": data.get("threshold"),
        "window_seconds": data.get("windowSeconds", 300),
    }
    targets = stored.get("targets")
    return Rule(
        wid,
        rid,
        str(data.get("rule", rid)),
        str(data.get("severity", "medium")),
        condition,
        tuple(str(t) for t in targets) if isinstance(targets, list) else (),
    )


class _Measure:
    """A round's numbers, each (workspace, window) queried once however many rules share
    it."""

    def __init__(self, store: SqlStore, now: float) -> None:
        self._store = store
        self._now = now
        self._windows: dict[tuple[str, int], WindowStats] = {}
        self._budgets: dict[str, BudgetUse | None] = {}

    async def value(self, rule: Rule) -> tuple[float | None, Record]:
        wid = rule.workspace_id
        if rule.metric == "budget":
            if wid not in self._budgets:
                self._budgets[wid] = await budget_use(self._store, wid, self._now)
            use = self._budgets[wid]
            if use is None:
                return None, {}
            return use.fraction, {
                "key": use.key_name,
                "period": use.period,
                "currentSpend": usd(use.spent_micros),
                "limit": usd(use.limit_micros),
            }
        stats = self._windows.get((wid, rule.window_s))
        if stats is None:
            stats = await window_stats(self._store, wid, self._now - rule.window_s, self._now)
            self._windows[wid, rule.window_s] = stats
        return metric_value(rule.metric, stats), {"requests": stats.requests}
