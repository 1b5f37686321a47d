"""``tollhouse keys create | list | revoke``: key management straight on the store.

Works whether or not a gateway is running: running workers see the change through the
store's key version within a second.  The raw key is printed once, at creation.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tollhouse.config import load_config
from tollhouse.errors import TollhouseError, ValidationError
from tollhouse.store.base import Store

# CLI flags for the API field names that appear in validation messages.
_FLAGS = {
    "name": "--name",
    "limit": "--budget-usd",
    "limit_reset": "--budget-period",
    "rpm": "--rpm",
    "tpm": "--tpm",
    "models": "--models",
    "team": "--team",
    "workspace_id": "--workspace",
}


def add_parser(sub: Any) -> None:
    """Register ``keys`` and its subcommands on the top-level subparsers."""
    keys = sub.add_parser("keys", help="create, list and revoke virtual keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)

    create = ksub.add_parser("create", help="create a key and print it once")
    create.add_argument("--config", help="YAML config file (default: built-in mock setup)")
    create.add_argument("--name", required=True, help="a name for the key")
    create.add_argument("--budget-usd", type=float, help="spend limit in USD")
    create.add_argument(
        "--budget-period",
        choices=("daily", "weekly", "monthly"),
        help="reset the budget every UTC day / ISO week / month (default: never)",
    )
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--models", help="comma-separated allowed models (globs allowed)")
    create.add_argument("--team", help="team the key's spend is attributed to")
    create.add_argument(
        "--workspace", help="workspace the key and its traffic belong to (default: default)"
    )
    create.add_argument("--json", action="store_true", help="print a JSON object")
    create.set_defaults(func=_create)

    listing = ksub.add_parser("list", help="list keys with their usage")
    listing.add_argument("--config", help="YAML config file (default: built-in mock setup)")
    listing.add_argument("--json", action="store_true", help="print JSON ({'data': [...]})")
    listing.set_defaults(func=_list)

    revoke = ksub.add_parser("revoke", help="disable a key (by hash or unique hash prefix)")
    revoke.add_argument("hash", help="the key's hash, or a unique prefix of it (>= 8 chars)")
    revoke.add_argument("--config", help="YAML config file (default: built-in mock setup)")
    revoke.set_defaults(func=_revoke)


def _run(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    from tollhouse.store import open_store

    config = load_config(args.config)

    async def main() -> int:
        store = open_store(config.store)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except TollhouseError as exc:
        print(f"tollhouse: {exc.message}", file=sys.stderr)
        return 1


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    from tollhouse.control.keys import parse_key_fields

    body: dict[str, Any] = {"name": args.name}
    if args.budget_period is not None and args.budget_usd is None:
        raise ValidationError("invalid key", {"limit_reset": "needs --budget-usd"})
    optional = {
        "limit": args.budget_usd,
        "limit_reset": args.budget_period,
        "rpm": args.rpm,
        "tpm": args.tpm,
        "team": args.team,
        "workspace_id": args.workspace,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if args.models is not None:
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    return parse_key_fields(body, create=True)


def _bad_flags(exc: ValidationError) -> int:
    for field, message in exc.fields.items():
        message = message.replace(", or null", "").replace(" or null", "")
        print(f"tollhouse: {_FLAGS.get(field, field)}: {message}", file=sys.stderr)
    return 2


def _create(args: argparse.Namespace) -> int:
    from tollhouse.control.keys import issue_key, key_json

    try:
        fields = _fields(args)
    except ValidationError as exc:
        return _bad_flags(exc)

    async def work(store: Store) -> int:
        try:
            raw, record = await issue_key(store, fields)
        except ValidationError as exc:  # --workspace names no workspace
            return _bad_flags(exc)
        if args.json:
            out = {"key": raw, **key_json(record, [0, 0, 0, 0])}
            print(orjson.dumps(out).decode())
            return 0
        print(f"created key {record.name!r}")
        print(f"  key   {raw}")
        print(f"  hash  {record.hash}")
        if record.limit_micros is not None:
            period = record.limit_reset or "total"
            print(f"  limit ${record.limit_micros / 1e6:,.2f} ({period})")
        print("This is the only time the key is shown: store it now.")
        return 0

    return _run(args, work)


def _list(args: argparse.Namespace) -> int:
    from tollhouse.control.keys import key_json, usage_of

    async def work(store: Store) -> int:
        records = await store.all_keys()
        records.sort(key=lambda r: (r.created_at, r.hash))
        usage = await usage_of(store, records)
        rows = [key_json(r, usage[r.hash]) for r in records]
        if args.json:
            print(orjson.dumps({"data": rows}).decode())
            return 0
        if not rows:
            print("no keys; create one with: tollhouse keys create --name NAME")
            return 0
        print(f"{'HASH':<16}  {'NAME':<20}  {'LABEL':<16}  {'STATUS':<8}  {'USAGE $':>10}  LIMIT $")
        for k in rows:
            limit = "-" if k["limit"] is None else f"{k['limit']:.2f} {k['limit_reset'] or ''}"
            status = "disabled" if k["disabled"] else "active"
            print(
                f"{k['hash'][:16]:<16}  {k['name'][:20]:<20}  {k['label']:<16}  {status:<8}  "
                f"{k['usage']:>10.4f}  {limit.strip()}"
            )
        return 0

    return _run(args, work)


def _revoke(args: argparse.Namespace) -> int:
    prefix = args.hash.strip().lower()
    if len(prefix) < 8:
        print("tollhouse: give the key's hash or at least its first 8 characters", file=sys.stderr)
        return 2

    async def work(store: Store) -> int:
        matches = [r for r in await store.all_keys() if r.hash.startswith(prefix)]
        if not matches:
            print(f"tollhouse: no key with hash {prefix}", file=sys.stderr)
            return 1
        if len(matches) > 1:
            print(f"tollhouse: {len(matches)} keys match {prefix}; give more", file=sys.stderr)
            return 1
        record = matches[0]
        if record.disabled:
            print(f"key {record.hash} ({record.name}) was already revoked")
            return 0
        await store.update_key(record.hash, {"disabled": True})
        print(f"revoked key {record.hash} ({record.name})")
        return 0

    return _run(args, work)
