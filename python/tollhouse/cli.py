"""The ``tollhouse`` command: serve, keys, check-config."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tollhouse import __version__
from tollhouse.config import Config, load_config
from tollhouse.control import keys_cli
from tollhouse.errors import ConfigError


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _describe(config)
    return 0


def _describe(config: Config) -> None:
    print(f"config ok: {config.source or '(built-in defaults)'}")
    print(f"  server   {config.server.host}:{config.server.port} workers={config.server.workers}")
    print(f"  store    {config.store.split('@')[-1] if '@' in config.store else config.store}")
    print(f"  counters {'redis' if config.counters != 'memory' else 'memory'}")
    print(f"  providers {', '.join(f'{p.name}({p.kind})' for p in config.providers.values())}")
    print(f"  models   {', '.join(config.models)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollhouse", description="A self-hosted, OpenAI-compatible gateway for LLM traffic."
    )
    parser.add_argument("--version", action="version", version=f"tollhouse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config", help="YAML config file (default: built-in mock setup)")
    check.set_defaults(func=_check_config)

    keys_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except ConfigError as exc:
        print(f"tollhouse: config error: {exc.message}", file=sys.stderr)
        return 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
