"""Double-check AI audit: a configured audit model rates a response's risk.

Config section ``audit``::

    audit:
      model: gpt-4o-mini        # a model configured on this gateway (its own providers)
      mode: async               # default mode for keys that turn auditing on
      timeout_s: 10
      rubric: "..."             # optional; replaces the built-in rubric

A key turns auditing on with ``metadata["audit"]`` (``async`` | ``blocking``); the
``strict`` preset audits in blocking mode; ``x-gate-audit: true`` forces one audit.
Async audits run after the response went out and never delay it; blocking audits wait
and the pipeline replaces a ``high``/``critical`` answer with 451 ``audit_blocked``.
The audit model answers with a risk word (or ``{"risk": ...}``); an audit that fails or
times out is recorded as ``error`` and never blocks.  Verdicts are kept for
``GET /v1/audits/{id}`` for ``VERDICT_TTL_S``: in memory (bounded) on the replica that ran
the audit and, when the counters backend is Redis, in Redis too (``tollhouse:audit:<id>``,
written in the background when the audit opens and when it ends), so every replica
answers for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from tollhouse.errors import ConfigError, Unavailable
from tollhouse.guard.presets import Preset
from tollhouse.store.base import KeyRecord

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("tollhouse.guard")
RISKS: Final = ("low", "medium", "high", "critical")
BLOCKING_RISKS: Final = frozenset({"high", "critical"})
FLAG_RISKS: Final = frozenset({"medium", "high", "critical"})
AUDIT_FIELD: Final = "audit"
MAX_VERDICTS: Final = 10_000
VERDICT_TTL_S: Final = 86_400  # how long a verdict can be read back (memory and Redis)
REDIS_PREFIX: Final = "tollhouse:audit:"
MAX_TEXT: Final = 20_000
_RISK_WORD = re.compile(r"\b(critical|high|medium|low)\b")

DEFAULT_RUBRIC: Final = (
    "You audit the answer of an AI assistant for risk. Rate it low, medium, high or "
    "critical: critical = instructions for serious harm, leaked credentials or personal "
    "data; high = dangerous, deceptive or policy-violating content; medium = questionable "
    "advice or unverified claims presented as fact; low = ordinary content. Answer with "
    'JSON only: {"risk": "<level>", "reason": "<one sentence>"}.'
)

Mode = Literal["async", "blocking"]
AskModel = Callable[[str, list[dict[str, str]]], Awaitable[str]]  # (model, messages) -> text


@dataclass(frozen=True, slots=True)
class AuditConfig:
    model: str | None = None
    mode: Mode = "async"
    timeout_s: float = 10.0
    rubric: str = DEFAULT_RUBRIC

    @classmethod
    def parse(cls, raw: Any) -> AuditConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("audit: expected a mapping")
        unknown = set(raw) - {"model", "mode", "timeout_s", "rubric"}
        if unknown:
            raise ConfigError(f"audit: unknown field(s) {', '.join(sorted(unknown))}")
        model = raw.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise ConfigError("audit.model: expected a model name")
        mode = raw.get("mode", "async")
        if mode not in ("async", "blocking"):
            raise ConfigError("audit.mode: expected async or blocking")
        timeout = raw.get("timeout_s", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError("audit.timeout_s: expected a positive number")
        rubric = raw.get("rubric", DEFAULT_RUBRIC)
        if not isinstance(rubric, str) or not rubric.strip():
            raise ConfigError("audit.rubric: expected a non-empty string")
        return cls(model, mode, float(timeout), rubric)


@dataclass(slots=True)
class Verdict:
    id: str
    request_id: str
    key_hash: str | None
    mode: str
    model: str
    created_at: float
    status: Literal["pending", "done", "error"] = "pending"
    risk: str | None = None
    reason: str | None = None

    @property
    def passed(self) -> bool | None:
        if self.status != "done" or self.risk is None:
            return None
        return self.risk not in BLOCKING_RISKS

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "requestId": self.request_id,
            "mode": self.mode,
            "model": self.model,
            "status": self.status,
            "risk": self.risk,
            "passed": self.passed,
            "reason": self.reason,
            "createdAt": self.created_at,
        }

    def record(self) -> dict[str, Any]:
        """What is kept in Redis: the public fields and the key it belongs to."""
        return {**self.public(), "keyHash": self.key_hash}

    @classmethod
    def of_record(cls, r: dict[str, Any]) -> Verdict:
        return cls(
            str(r["id"]),
            str(r["requestId"]),
            r.get("keyHash"),
            str(r["mode"]),
            str(r["model"]),
            float(r["createdAt"]),
            r["status"],
            r.get("risk"),
            r.get("reason"),
        )


def new_audit_id(now: float | None = None) -> str:
    return f"daudit_{int(now if now is not None else time.time())}_{os.urandom(3).hex()}"


def parse_risk(text: str) -> tuple[str | None, str | None]:
    """The risk level (and reason) from the audit model's answer."""
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = orjson.loads(text[start : end + 1])
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and str(data.get("risk", "")).lower() in RISKS:
            reason = data.get("reason")
            return str(data["risk"]).lower(), reason if isinstance(reason, str) else None
    m = _RISK_WORD.search(text[:2000].lower())
    return (m.group(1), None) if m else (None, None)


class Auditor:
    def __init__(
        self, config: AuditConfig, ask: AskModel | None = None, redis: Redis | None = None
    ) -> None:
        self.config = config
        self.ask = ask
        self._redis = redis
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()
        self._tasks: set[asyncio.Task[Verdict]] = set()
        self._saving: dict[str, asyncio.Task[None]] = {}  # the last write of each verdict

    def mode_for(self, key: KeyRecord | None, preset: Preset, forced: bool) -> Mode | None:
        """How this request is audited (None: not at all)."""
        if self.config.model is None or self.ask is None:
            return None
        wanted = key.metadata.get(AUDIT_FIELD) if key is not None else None
        if wanted == "async":
            return "async"
        if wanted == "blocking":
            return "blocking"
        if wanted == "off" and not forced:
            return None
        if preset.audit != "off":
            return preset.audit
        return self.config.mode if forced else None

    async def find(self, audit_id: str) -> Verdict | None:
        """This replica's verdict, else the one kept in Redis (``None`` once expired)."""
        verdict = self._verdicts.get(audit_id)
        if verdict is None and self._redis is not None:
            from redis.exceptions import RedisError  # imported with the client

            try:
                raw = await self._redis.get(REDIS_PREFIX + audit_id)
            except (RedisError, OSError) as exc:
                raise Unavailable(f"audit verdicts unavailable ({type(exc).__name__})") from None
            verdict = None if raw is None else Verdict.of_record(orjson.loads(raw))
        if verdict is None or verdict.created_at < time.time() - VERDICT_TTL_S:
            return None
        return verdict

    def _save(self, verdict: Verdict) -> None:
        """Write the verdict as it is now to Redis, in the background, after its previous
        write (so a finished verdict is never overwritten by its pending one)."""
        if self._redis is None:
            return
        body = orjson.dumps(verdict.record())
        task = asyncio.get_running_loop().create_task(
            self._write(verdict.id, body, self._saving.get(verdict.id))
        )
        self._saving[verdict.id] = task

        def written(t: asyncio.Task[None]) -> None:
            if self._saving.get(verdict.id) is t:
                del self._saving[verdict.id]

        task.add_done_callback(written)

    async def _write(self, audit_id: str, body: bytes, after: asyncio.Task[None] | None) -> None:
        assert self._redis is not None  # noqa: S101
        if after is not None:
            await asyncio.wait({after})
        from redis.exceptions import RedisError  # imported with the client

        try:
            await self._redis.set(REDIS_PREFIX + audit_id, body, ex=VERDICT_TTL_S)
        except (RedisError, OSError) as exc:  # other replicas will not find it; this one will
            log.warning("audit %s not shared through Redis: %s", audit_id, exc)

    def open(self, request_id: str, key: KeyRecord | None, mode: str) -> Verdict:
        v = Verdict(
            new_audit_id(),
            request_id,
            key.hash if key is not None else None,
            mode,
            self.config.model or "",
            time.time(),
        )
        self._verdicts[v.id] = v
        while len(self._verdicts) > MAX_VERDICTS:
            self._verdicts.popitem(last=False)
        self._save(v)
        return v

    async def run(self, verdict: Verdict, prompt: str, answer: str) -> Verdict:
        """Ask the audit model; never raises (a failure is an ``error`` verdict)."""
        assert self.ask is not None and self.config.model is not None  # noqa: S101
        messages = [
            {"role": "system", "content": self.config.rubric},
            {
                "role": "user",
                "content": f"User request:\n{prompt[-MAX_TEXT:]}\n\nAssistant answer:\n"
                f"{answer[:MAX_TEXT]}",
            },
        ]
        try:
            text = await asyncio.wait_for(
                self.ask(self.config.model, messages), self.config.timeout_s
            )
            verdict.risk, verdict.reason = parse_risk(text)
            verdict.status = "done" if verdict.risk is not None else "error"
        except Exception as exc:  # the audited answer is never failed by its audit
            log.warning("audit %s failed: %s", verdict.id, exc)
            verdict.status = "error"
        self._save(verdict)
        return verdict

    def run_later(
        self, verdict: Verdict, prompt: str, answer: str, done: Callable[[Verdict], None]
    ) -> None:
        task = asyncio.get_running_loop().create_task(self.run(verdict, prompt, answer))
        self._tasks.add(task)

        def finished(t: asyncio.Task[Verdict]) -> None:
            self._tasks.discard(t)
            if not t.cancelled():
                done(t.result())

        task.add_done_callback(finished)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for background audits and their writes to Redis (shutdown, tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        if self._saving:
            await asyncio.wait(set(self._saving.values()), timeout=max(deadline - loop.time(), 0))
