"""Webhooks: event records, signing, the SSRF guard, the delivery queue, budget alerts."""

from tollhouse.events.alerts import MemoryOnceGate, OnceGate, OnceTracker, RedisOnceGate
from tollhouse.events.config import WebhookEndpoint, WebhooksConfig, parse_webhooks
from tollhouse.events.dispatcher import AttemptResult, WebhookDispatcher
from tollhouse.events.signing import mask_url, sign, signature_headers, verify
from tollhouse.events.slack import slack_body
from tollhouse.events.ssrf import SSRFGuard
from tollhouse.events.types import EVENT_TYPES, Event, EventType, usd

__all__ = [
    "EVENT_TYPES",
    "AttemptResult",
    "Event",
    "EventType",
    "MemoryOnceGate",
    "OnceGate",
    "OnceTracker",
    "RedisOnceGate",
    "SSRFGuard",
    "WebhookDispatcher",
    "WebhookEndpoint",
    "WebhooksConfig",
    "mask_url",
    "parse_webhooks",
    "sign",
    "signature_headers",
    "slack_body",
    "usd",
    "verify",
]
