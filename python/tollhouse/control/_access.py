"""Who may do what in a workspace: the caller's principal and the role checks.

The config's ``admin_key`` is owner of every workspace.  A workspace API key (``wk_…``,
stored as its SHA-256) acts in its own workspace with its role.  401 when the token is
missing or unknown; 403 when the role is too low or the workspace is not the key's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from tollhouse.control._auth import ControlGateway, is_admin
from tollhouse.errors import Forbidden, InvalidKey, NotFound
from tollhouse.guard.keys import bearer_token, hash_key
from tollhouse.guard.policies import DEFAULT_WORKSPACE
from tollhouse.store import SqlStore
from tollhouse.store.base import Store

Role = Literal["owner", "admin", "member", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "admin", "member", "viewer")
RANK: dict[str, int] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}
KEY_PREFIX = "wk_"


@dataclass(frozen=True)
class Principal:
    """The admin key (``workspace_id`` None: every workspace) or a workspace API key."""

    actor: str
    role: Role
    workspace_id: str | None
    key_id: str | None = None

    def role_in(self, workspace_id: str) -> Role | None:
        if self.workspace_id is None or self.workspace_id == workspace_id:
            return self.role
        return None


def sql_store(gw: ControlGateway) -> SqlStore:
    store = gw.store
    if not isinstance(store, SqlStore):
        raise TypeError("workspaces need a SQL store")
    return store


async def principal(request: Request, gw: ControlGateway) -> Principal:
    """The caller, or 401 ``invalid_key``.  Also noted on the request for the audit log,
    and kept there: a route that asks again (then ``require_role``) looks the key up once."""
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    if is_admin(request, gw):
        p = Principal("admin", "owner", None)
    else:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise InvalidKey("missing API key: send 'Authorization: Bearer <key>'")
        if not token.startswith(KEY_PREFIX) or len(token) > 200:
            raise InvalidKey("invalid API key")
        rows = await sql_store(gw)._fetch(
            "SELECT id, workspace_id, role, revoked_at FROM workspace_api_keys WHERE hash = ?",
            (hash_key(token),),
        )
        if not rows or rows[0][3] is not None:
            raise InvalidKey("invalid API key")
        key_id, workspace_id, role = rows[0][0], rows[0][1], rows[0][2]
        p = Principal(f"apikey:{key_id}", role, workspace_id, key_id)
    request.state.actor = p.actor
    request.state.principal = p
    return p


async def workspace_in(store: Store, workspace_id: str) -> bool:
    """Whether the store holds the workspace (a store without workspaces: only
    ``default``)."""
    if not isinstance(store, SqlStore):
        return workspace_id == DEFAULT_WORKSPACE
    rows = await store._fetch("SELECT 1 FROM workspaces WHERE id = ?", (workspace_id,))
    return bool(rows)


async def require_role(
    request: Request, gw: ControlGateway, workspace_id: str, least: Role
) -> Principal:
    """The caller if it holds at least ``least`` in the workspace: else 401/403/404.  The
    workspace is noted on the request: the audit log files the change under it."""
    p = await principal(request, gw)
    role = p.role_in(workspace_id)
    if role is None:
        raise Forbidden("this API key belongs to another workspace")
    if not await workspace_in(gw.store, workspace_id):
        raise NotFound(f"workspace {workspace_id!r} not found")
    if RANK[role] < RANK[least]:
        raise Forbidden(f"the {role} role may not do this (needs {least} or above)")
    request.state.workspace_id = workspace_id
    return p


def now() -> float:
    return time.time()
