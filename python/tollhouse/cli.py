"""The ``tollhouse`` command: serve, keys, check-config."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tollhouse import __version__
from tollhouse.config import Config, load_config
from tollhouse.control import keys_cli
from tollhouse.errors import ConfigError


def _validate_sections(config: Config) -> None:
    """Sections owned by later stages, checked here so mistakes surface before serving."""
    from tollhouse.control._ratelimit import parse_control
    from tollhouse.events.config import parse_webhooks
    from tollhouse.events.evaluator import parse_alerts
    from tollhouse.guard.limits_config import parse_limits
    from tollhouse.metrics import parse_settings

    parse_settings(config.section("metrics"))
    parse_limits(config.section("limits"))
    parse_webhooks(config.section("webhooks"))
    parse_control(config.section("control"))
    parse_alerts(config.section("alerts"))


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _validate_sections(config)
    _describe(config)
    return 0


def _describe(config: Config) -> None:
    print(f"config ok: {config.source or '(built-in defaults)'}")
    print(f"  server   {config.server.host}:{config.server.port} workers={config.server.workers}")
    print(f"  store    {config.store.split('@')[-1] if '@' in config.store else config.store}")
    print(f"  counters {'redis' if config.counters != 'memory' else 'memory'}")
    print(f"  providers {', '.join(f'{p.name}({p.kind})' for p in config.providers.values())}")
    print(f"  models   {', '.join(config.models)}")


def multiprocess_refusals(config: Config) -> list[str]:
    """Why this config cannot run in several worker processes (empty when it can).

    SQLite (WAL, file locks) and PostgreSQL are shared by all workers, and the key cache
    polls the store, so keys and spend rows are process-safe.  In-memory state is not.
    """
    problems = []
    if config.counters == "memory":
        problems.append(
            "counters: memory keeps budgets and rate limits per process, so N workers "
            "would allow N times every limit; set counters: redis://... to run workers > 1"
        )
    if ":memory:" in config.store:
        problems.append("store: an in-memory SQLite database cannot be shared by workers")
    return problems


def _serve(args: argparse.Namespace) -> int:
    from tollhouse.app import CONFIG_ENV

    config = load_config(args.config)
    _validate_sections(config)
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    workers = config.server.workers if args.workers is None else args.workers
    if workers < 1:
        raise ConfigError("--workers: must be >= 1")
    if workers > 1:
        problems = multiprocess_refusals(config)
        if problems:
            print(f"tollhouse: refusing --workers {workers}:", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            return 2
    os.environ[CONFIG_ENV] = str(Path(args.config).resolve()) if args.config else ""
    config_arg = f" --config {args.config}" if args.config else ""
    print(f"tollhouse {__version__} on http://{host}:{port}/v1 (workers={workers})")
    print(f"  store {config.store.split('@')[-1]}; models: {', '.join(config.models)}")
    print(f"  create a key:  tollhouse keys create{config_arg} --name my-app")
    print("  then call it with 'Authorization: Bearer gk_...' at the base URL above", flush=True)
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    from tollhouse.metrics import cleanup_multiprocess_dir, prepare_multiprocess_dir

    metrics_dir = prepare_multiprocess_dir()
    try:
        Granian(
            target="tollhouse.app:app_from_env",
            factory=True,
            interface=Interfaces.ASGI,
            address=host,
            port=port,
            workers=workers,
            http=HTTPModes.http1,
            websockets=False,
            log_access=False,
        ).serve()
    finally:
        cleanup_multiprocess_dir(metrics_dir)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tollhouse", description="A self-hosted, OpenAI-compatible gateway for LLM traffic."
    )
    parser.add_argument("--version", action="version", version=f"tollhouse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config", help="YAML config file (default: built-in mock setup)")
    check.set_defaults(func=_check_config)

    serve = sub.add_parser("serve", help="run the gateway (Granian)")
    serve.add_argument("--config", help="YAML config file (default: SQLite + mock provider)")
    serve.add_argument("--host", help="listen address (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port, 4000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    serve.set_defaults(func=_serve)

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
