"""The control plane: key management and the caller's lookups.

``routes(gw)`` is what the app mounts; later parts of the control plane append their
route lists here.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from tollhouse.control import (
    alert_rules,
    apikeys,
    audit_log,
    audits,
    credits,
    deliveries,
    enforcement,
    failover,
    guardrails,
    incidents,
    ingest,
    keys,
    lookups,
    members,
    metering,
    openapi,
    policies,
    presets,
    routing,
    security,
    workspaces,
)
from tollhouse.control._auth import ControlGateway, require_admin
from tollhouse.control._ratelimit import ControlRateLimiter, limit_routes, limiter_for
from tollhouse.control.guardrails import LimitsGateway
from tollhouse.store import SqlStore

__all__ = ["ControlGateway", "require_admin", "routes"]


def routes(gw: ControlGateway, *, limiter: ControlRateLimiter | None = None) -> list[BaseRoute]:
    """Every control-plane route, bound to a running gateway (``limiter``: the
    control-plane rate limit; by default the config's ``control.rate_limit``, 600
    requests a minute per caller unless set, shared through Redis counters)."""
    out = [*keys.routes(gw), *lookups.routes(gw), *credits.routes(gw)]
    if isinstance(gw, LimitsGateway):  # a gateway running the limits stage
        out += [*guardrails.routes(gw), *enforcement.routes(gw)]
    out += presets.routes(gw)
    if isinstance(gw, security.SecurityGateway):  # a gateway running the security stages
        out += [*security.routes(gw), *audits.routes(gw)]
    if isinstance(gw, routing.RoutingGateway):  # a gateway with a router (routing/)
        out += [*routing.routes(gw), *failover.routes(gw)]
    out += [*audit_log.routes(gw), *metering.routes(gw)]
    if isinstance(gw.store, SqlStore):
        out += [*workspaces.routes(gw), *members.routes(gw), *apikeys.routes(gw)]
        out += [*deliveries.routes(gw), *alert_rules.routes(gw), *ingest.routes(gw)]
        out += [*policies.routes(gw), *incidents.routes(gw)]
    # Last: every change made through any route above is recorded in the audit log, and
    # every answer carries X-RateLimit-* (a caller over the limit gets 429).
    audit_log.audit_routes(out, gw)
    out.append(openapi.route(out))
    return limit_routes(out, limiter or limiter_for(gw))
