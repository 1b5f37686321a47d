"""Who is calling the control plane: the admin key or a virtual key.

The admin key is compared in constant time; neither key ever appears in an error.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from starlette.requests import Request

from tollhouse.config import Config
from tollhouse.errors import InvalidKey
from tollhouse.guard.keys import KeyCache, bearer_token
from tollhouse.store.base import KeyRecord, Store
from tollhouse.store.writer import SpendWriter


class ControlGateway(Protocol):
    """What the control routes need of ``tollhouse.gateway.Gateway``."""

    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> Store: ...

    @property
    def keys(self) -> KeyCache: ...

    @property
    def spend(self) -> SpendWriter: ...


def is_admin(request: Request, gw: ControlGateway) -> bool:
    """Whether the bearer token is the configured admin key (constant-time compare)."""
    admin = gw.config.admin_key
    token = bearer_token(request.headers.get("authorization"))
    if admin is None or token is None:
        return False
    return hmac.compare_digest(token.encode("utf-8"), admin.get().encode("utf-8"))


def require_admin(request: Request, gw: ControlGateway) -> None:
    """Raise 401 ``invalid_key`` unless the caller presents the admin key."""
    if gw.config.admin_key is None:
        raise InvalidKey("the admin API is disabled: set admin_key in the config")
    if bearer_token(request.headers.get("authorization")) is None:
        raise InvalidKey("missing admin key: send 'Authorization: Bearer <admin key>'")
    if not is_admin(request, gw):
        raise InvalidKey("invalid admin key")


def require_virtual_key(request: Request, gw: ControlGateway) -> KeyRecord:
    """The calling virtual key (from the in-memory cache), or 401 ``invalid_key``."""
    return gw.keys.authenticate(bearer_token(request.headers.get("authorization")))


def admin_or_key(request: Request, gw: ControlGateway) -> KeyRecord | None:
    """None for the admin key, else the calling virtual key (or 401)."""
    if is_admin(request, gw):
        return None
    return require_virtual_key(request, gw)
