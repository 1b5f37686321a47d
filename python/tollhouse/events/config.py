"""The ``webhooks:`` config section.

```yaml
webhooks:
  endpoints:
    - url: https://hooks.example.com/gate
      secret: env:GATE_WEBHOOK_SECRET
      events: [budget.alert, budget.exceeded]   # omitted = every event
    - url: env:SLACK_WEBHOOK_URL
      type: slack                               # Slack incoming webhook; secret optional
  allow_private: [10.20.0.0/16, hooks.internal] # SSRF guard exceptions
  max_queue: 10000
  max_attempts: 6
  timeout: 10
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from tollhouse.config import Secret, resolve_env
from tollhouse.errors import ConfigError
from tollhouse.events.signing import mask_url, secret_bytes
from tollhouse.events.ssrf import SSRFGuard
from tollhouse.events.types import EVENT_TYPES

EndpointType = Literal["webhook", "slack"]
ENDPOINT_TYPES: tuple[str, ...] = ("webhook", "slack")
_SECTION_KEYS = ("endpoints", "allow_private", "max_queue", "max_attempts", "timeout")
_ENDPOINT_KEYS = ("url", "secret", "events", "type", "name")


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """One delivery target.  ``events`` None means every event type."""

    url: str
    secret: Secret | None = None
    events: frozenset[str] | None = None
    type: EndpointType = "webhook"
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", mask_url(self.url))

    def wants(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events

    def __repr__(self) -> str:
        return (
            f"WebhookEndpoint(name={self.name!r}, url={mask_url(self.url)!r}, "
            f"type={self.type!r}, events={sorted(self.events) if self.events else 'all'})"
        )


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    endpoints: tuple[WebhookEndpoint, ...] = ()
    allow_private: tuple[str, ...] = ()
    max_queue: int = 10_000
    max_attempts: int = 6
    timeout: float = 10.0

    def guard(self) -> SSRFGuard:
        return SSRFGuard(self.allow_private)


def _endpoint(i: int, raw: Any) -> WebhookEndpoint:
    where = f"webhooks.endpoints[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in _ENDPOINT_KEYS:
            raise ConfigError(
                f"{where}.{key}: unknown key (expected one of: {', '.join(_ENDPOINT_KEYS)})"
            )
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}.url: expected a non-empty URL")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{where}.url: malformed URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where}.url: scheme must be http or https, got {parts.scheme!r}")
    if not host:
        raise ConfigError(f"{where}.url: missing host")
    kind = raw.get("type", "webhook")
    if kind not in ENDPOINT_TYPES:
        raise ConfigError(f"{where}.type: expected one of webhook, slack, got {kind!r}")
    secret_raw = raw.get("secret")
    secret: Secret | None = None
    if secret_raw is not None:
        if not isinstance(secret_raw, str) or not secret_raw:
            raise ConfigError(f"{where}.secret: expected a non-empty string (use env:NAME)")
        secret = Secret(secret_raw)
        try:
            secret_bytes(secret)
        except ConfigError:
            raise ConfigError(f"{where}.secret: whsec_ secret is not valid base64") from None
    elif kind == "webhook":
        raise ConfigError(f"{where}.secret: required for webhook endpoints (use env:NAME)")
    events_raw = raw.get("events")
    events: frozenset[str] | None = None
    if events_raw is not None:
        if not isinstance(events_raw, list) or not events_raw:
            raise ConfigError(f"{where}.events: expected a non-empty list of event names")
        for j, name in enumerate(events_raw):
            if name not in EVENT_TYPES:
                raise ConfigError(
                    f"{where}.events[{j}]: unknown event {name!r} "
                    f"(expected one of: {', '.join(EVENT_TYPES)})"
                )
        events = frozenset(events_raw)
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{where}.name: expected a string")
    return WebhookEndpoint(url=url, secret=secret, events=events, type=kind, name=name)


def _positive(raw: dict[str, Any], key: str, default: float, *, integer: bool) -> Any:
    value = raw.get(key, default)
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"webhooks.{key}: expected {kind}, got {value!r}")
    return value


def parse_webhooks(
    raw: Any, *, env: dict[str, str] | os._Environ[str] | None = None
) -> WebhooksConfig:
    """Validate the section (``Config.section("webhooks")``); ``env:NAME`` references left
    unresolved (when called on a raw document) are resolved here."""
    if raw is None:
        return WebhooksConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"webhooks: expected a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in _SECTION_KEYS:
            raise ConfigError(
                f"webhooks.{key}: unknown key (expected one of: {', '.join(_SECTION_KEYS)})"
            )
    data = resolve_env(raw, "webhooks", os.environ if env is None else env)
    endpoints_raw = data.get("endpoints", [])
    if endpoints_raw is None:
        endpoints_raw = []
    if not isinstance(endpoints_raw, list):
        raise ConfigError("webhooks.endpoints: expected a list")
    allow_raw = data.get("allow_private", [])
    if allow_raw is None:
        allow_raw = []
    if not isinstance(allow_raw, list):
        raise ConfigError("webhooks.allow_private: expected a list of CIDRs or host names")
    SSRFGuard(allow_raw)  # validates each entry, naming the bad one
    return WebhooksConfig(
        endpoints=tuple(_endpoint(i, e) for i, e in enumerate(endpoints_raw)),
        allow_private=tuple(allow_raw),
        max_queue=_positive(data, "max_queue", 10_000, integer=True),
        max_attempts=_positive(data, "max_attempts", 6, integer=True),
        timeout=float(_positive(data, "timeout", 10.0, integer=False)),
    )
