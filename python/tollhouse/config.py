"""Typed configuration: a YAML file plus ``env:NAME`` references.

Everything is validated at load time and every message names the offending key
(``providers.up.base_url: ...``), so a mistake is reported at start-up, not at 3 a.m.
Sections owned by later stages of the pipeline (guardrails, policies, redaction, ...)
are kept as plain mappings here and validated by their own modules.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from tollhouse.errors import ConfigError

PROVIDER_KINDS = ("openai", "anthropic", "gemini", "azure", "openai_compatible", "mock")
FailMode = Literal["open", "closed"]
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


class Secret:
    """A secret value that masks itself when printed or logged."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 4000
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str
    base_url: str | None = None
    api_key: Secret | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    total_timeout: float = 600.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    provider: str
    model: str
    weight: int = 1
    region: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    name: str
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: str = "sqlite:///./tollhouse.db"
    counters: str = "memory"
    fail_mode: FailMode = "closed"
    admin_key: Secret | None = None
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    pricing: dict[str, dict[str, float]] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def section(self, name: str) -> Any:
        """A section owned by a later stage (guardrails, policies, redaction, ...)."""
        return self.sections.get(name)


OTHER_SECTIONS = (
    "guardrails",
    "policies",
    "redaction",
    "sessions",
    "cache",
    "webhooks",
    "audit",
    "routing",
    "metrics",
    "limits",
    "alerts",
    "control",
)
TOP_LEVEL = (
    "server",
    "store",
    "counters",
    "fail_mode",
    "admin_key",
    "providers",
    "models",
    "pricing",
    *OTHER_SECTIONS,
)
PRICE_FIELDS = (
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "max_output_tokens",
)


def resolve_env(value: Any, where: str, env: dict[str, str] | os._Environ[str]) -> Any:
    """Replace every ``env:NAME`` string (at any depth) by the variable's value."""
    if isinstance(value, str):
        m = _ENV_REF.match(value)
        if m is None:
            return value
        name = m.group(1)
        if name not in env:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return env[name]
    if isinstance(value, dict):
        return {
            k: resolve_env(v, f"{where}.{k}" if where else str(k), env) for k, v in value.items()
        }
    if isinstance(value, list):
        return [resolve_env(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _unknown(data: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            hint = ", ".join(allowed)
            raise ConfigError(f"{where}.{key}: unknown key (expected one of: {hint})".lstrip("."))


def _int(value: Any, where: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ConfigError(f"{where}: must be {bound}, got {value}")
    return value


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where}: must be {'> 0' if positive else '>= 0'}, got {value}")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _server(data: dict[str, Any]) -> ServerConfig:
    _unknown(data, ("host", "port", "workers", "max_body_bytes"), "server")
    d = ServerConfig()
    return ServerConfig(
        host=_str(data.get("host", d.host), "server.host"),
        port=_int(data.get("port", d.port), "server.port", minimum=0, maximum=65535),
        workers=_int(data.get("workers", d.workers), "server.workers", minimum=1, maximum=64),
        max_body_bytes=_int(
            data.get("max_body_bytes", d.max_body_bytes), "server.max_body_bytes", minimum=1024
        ),
    )


def _provider(name: str, data: dict[str, Any]) -> ProviderConfig:
    where = f"providers.{name}"
    allowed = (
        "kind",
        "base_url",
        "api_key",
        "connect_timeout",
        "read_timeout",
        "total_timeout",
        "options",
    )
    _unknown(data, allowed, where)
    kind = data.get("kind")
    if kind not in PROVIDER_KINDS:
        raise ConfigError(
            f"{where}.kind: expected one of {', '.join(PROVIDER_KINDS)}, got {kind!r}"
        )
    base_url = data.get("base_url")
    if base_url is not None:
        base_url = _str(base_url, f"{where}.base_url")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.base_url: must start with http:// or https://")
        base_url = base_url.rstrip("/")
    if kind in ("openai_compatible", "azure") and base_url is None:
        raise ConfigError(f"{where}.base_url: required for kind {kind}")
    api_key = data.get("api_key")
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key=Secret(_str(api_key, f"{where}.api_key")) if api_key is not None else None,
        connect_timeout=_number(
            data.get("connect_timeout", 5.0), f"{where}.connect_timeout", positive=True
        ),
        read_timeout=_number(
            data.get("read_timeout", 120.0), f"{where}.read_timeout", positive=True
        ),
        total_timeout=_number(
            data.get("total_timeout", 600.0), f"{where}.total_timeout", positive=True
        ),
        options=_mapping(data.get("options"), f"{where}.options"),
    )


def _model(name: str, data: dict[str, Any], providers: dict[str, ProviderConfig]) -> ModelConfig:
    where = f"models.{name}"
    _unknown(data, ("deployments", "fallbacks", "aliases"), where)
    raw = data.get("deployments")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.deployments: expected a non-empty list")
    deps = []
    for i, dep in enumerate(raw):
        dw = f"{where}.deployments[{i}]"
        dep = _mapping(dep, dw)
        _unknown(dep, ("provider", "model", "weight", "region"), dw)
        provider = _str(dep.get("provider"), f"{dw}.provider")
        if provider not in providers:
            raise ConfigError(f"{dw}.provider: unknown provider {provider!r}")
        deps.append(
            Deployment(
                provider=provider,
                model=_str(dep.get("model", name), f"{dw}.model"),
                weight=_int(dep.get("weight", 1), f"{dw}.weight", minimum=1),
                region=dep.get("region"),
            )
        )
    fallbacks = data.get("fallbacks") or []
    aliases = data.get("aliases") or []
    for key, seq in (("fallbacks", fallbacks), ("aliases", aliases)):
        if not isinstance(seq, list) or not all(isinstance(s, str) and s for s in seq):
            raise ConfigError(f"{where}.{key}: expected a list of names")
    return ModelConfig(name, tuple(deps), tuple(fallbacks), tuple(aliases))


def _pricing(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for model, entry in data.items():
        where = f"pricing.{model}"
        entry = _mapping(entry, where)
        _unknown(entry, PRICE_FIELDS, where)
        if "input_per_mtok" not in entry or "output_per_mtok" not in entry:
            raise ConfigError(f"{where}: input_per_mtok and output_per_mtok are required")
        out[str(model)] = {k: _number(v, f"{where}.{k}") for k, v in entry.items()}
    return out


def default_config() -> Config:
    """The zero-config gateway: SQLite in the working directory and the mock provider."""
    mock = ProviderConfig(name="mock", kind="mock")
    return Config(
        providers={"mock": mock},
        models={"mock-1": ModelConfig("mock-1", (Deployment(provider="mock", model="mock-1"),))},
        pricing={"mock-1": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
    )


def parse_config(
    raw: Any, *, env: dict[str, str] | os._Environ[str] | None = None, source: str | None = None
) -> Config:
    """Validate a parsed YAML document into a ``Config``."""
    data = _mapping(raw, "config")
    _unknown(data, TOP_LEVEL, "")
    data = resolve_env(data, "", os.environ if env is None else env)
    server = _server(_mapping(data.get("server"), "server"))
    store = _str(data.get("store", "sqlite:///./tollhouse.db"), "store")
    if not store.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise ConfigError("store: expected sqlite:///PATH or postgresql://...")
    counters = _str(data.get("counters", "memory"), "counters")
    if counters != "memory" and not counters.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("counters: expected 'memory' or redis://...")
    fail_mode = data.get("fail_mode", "closed")
    if fail_mode not in ("open", "closed"):
        raise ConfigError(f"fail_mode: expected 'open' or 'closed', got {fail_mode!r}")
    admin_key = data.get("admin_key")
    if admin_key is not None:
        admin_key = Secret(_str(admin_key, "admin_key"))
    providers = {
        str(n): _provider(str(n), _mapping(p, f"providers.{n}"))
        for n, p in _mapping(data.get("providers"), "providers").items()
    }
    models = {
        str(n): _model(str(n), _mapping(m, f"models.{n}"), providers)
        for n, m in _mapping(data.get("models"), "models").items()
    }
    for m in models.values():
        for fb in m.fallbacks:
            if fb not in models:
                raise ConfigError(f"models.{m.name}.fallbacks: unknown model {fb!r}")
    return Config(
        server=server,
        store=store,
        counters=counters,
        fail_mode=fail_mode,
        admin_key=admin_key,
        providers=providers,
        models=models,
        pricing=_pricing(_mapping(data.get("pricing"), "pricing")),
        sections={k: data[k] for k in OTHER_SECTIONS if k in data},
        source=source,
    )


def load_config(path: str | Path | None) -> Config:
    """Load ``path`` (YAML), or the zero-config default when ``path`` is None."""
    if path is None:
        return default_config()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from None
    return parse_config(raw or {}, source=str(p))
